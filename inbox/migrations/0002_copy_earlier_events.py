"""The events and rejections recorded before the inbox existed (messaging.WebhookEvent, messaging.WebhookRejection,
payments.PaymentEvent) move into it with their history; the old tables are dropped by the migrations after this."""

from django.db import migrations

PAYMENT_STATUS = {"pending": "pending", "processed": "processed", "ignored": "ignored", "flagged": "flagged",
                  "failed": "failed"}  # fmt: skip


def copy(apps, schema_editor):
    Event = apps.get_model("inbox", "WebhookEvent")
    Rejection = apps.get_model("inbox", "WebhookRejection")
    OldEvent = apps.get_model("messaging", "WebhookEvent")
    OldRejection = apps.get_model("messaging", "WebhookRejection")
    PaymentEvent = apps.get_model("payments", "PaymentEvent")
    for old in OldEvent.objects.all().iterator():
        event = Event.objects.create(
            provider=old.provider, event_id=old.event_id, event_type=old.event_type, clinic_id=old.clinic_id,
            our_number=old.our_number, payload=old.payload, status=old.status, error_class=old.error[:80],
            attempts=1 if old.status != "pending" else 0, processed_at=old.processed_at,
        )  # fmt: skip
        Event.objects.filter(pk=event.pk).update(received_at=old.received_at)
    for old in PaymentEvent.objects.all().iterator():
        event = Event.objects.create(
            provider=old.provider, event_id=old.event_id, event_type=old.event_type, clinic_id=old.clinic_id,
            payload=old.payload, status=PAYMENT_STATUS.get(old.status, "failed"), reason=old.outcome[:200],
            attempts=1 if old.status != "pending" else 0, processed_at=old.processed_at,
            subject_type="payments.payment" if old.payment_id else "", subject_id=str(old.payment_id or ""),
        )  # fmt: skip
        Event.objects.filter(pk=event.pk).update(received_at=old.received_at)
    for old in OldRejection.objects.all().iterator():
        row = Rejection.objects.create(
            provider=old.provider, path=old.path, reason=old.reason, ip_address=old.ip_address, status_code=403
        )
        Rejection.objects.filter(pk=row.pk).update(at=old.at)


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0001_initial"),
        ("messaging", "0005_message_direction_created"),
        ("payments", "0001_initial"),
    ]

    operations = [migrations.RunPython(copy, migrations.RunPython.noop)]
