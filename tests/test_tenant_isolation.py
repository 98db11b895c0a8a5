"""Staff of clinic A can neither see, change nor reference clinic B's rows, in any admin or the staff API.

The walk covers every registered ModelAdmin: each is either clinic-scoped (and has a row factory below) or a
platform admin that clinic staff cannot open at all. A new admin without a factory fails this test.
"""

import pytest
from django.apps import apps
from django.contrib import admin
from django.forms.models import model_to_dict
from django.urls import reverse

from conversation.models import Conversation
from conversation.services import conversation_for
from inbox.models import WebhookEvent
from knowledge.models import KnowledgeDocument
from leads.models import Lead
from leads.services import lead_create
from medspa.admin import ClinicScopedAdmin, PlatformAdmin
from medspa.models import AuditEvent, Clinic, ClinicMembership, Service
from medspa.tenancy import is_clinic_scoped
from messaging.models import ClinicMessaging, Message, OptOut, PhoneNumber
from messaging.services import optout_record

from .conftest import CONSENT, make_clinic, make_service, make_staff

_counter = iter(range(10_000))


def _service(clinic):
    return make_service(clinic, name=f"Service {next(_counter)}")


def _membership(clinic):
    return make_staff(f"user-{next(_counter)}", clinic).clinic_memberships.get()


def _lead(clinic):
    service = Service.objects.for_clinic(clinic).first() or _service(clinic)
    lead, _ = lead_create(
        clinic=clinic,
        name="Pat Example",
        phone=f"+1617555{next(_counter):04d}",
        service_of_interest=service.name,
        sms_consent=True,
        consent_text=CONSENT,
    )
    return lead


def _audit_event(clinic):
    return AuditEvent.objects.create(clinic=clinic, actor="system", action="view", object_type="leads.lead")


def _opt_out(clinic):
    return optout_record(clinic=clinic, phone=f"+1617555{next(_counter):04d}", source=OptOut.Source.KEYWORD)[0]


def _phone_number(clinic):
    return PhoneNumber.objects.create(clinic=clinic, number=f"+1555555{next(_counter):04d}")


def _clinic_messaging(clinic):
    return ClinicMessaging.objects.create(clinic=clinic, legal_name=f"{clinic.name} LLC")


def _conversation(clinic):
    return conversation_for(clinic=clinic, patient_phone=f"+1617555{next(_counter):04d}", origin="inbound_text")


def _message(clinic):
    conversation = _conversation(clinic)
    return Message.objects.create(
        clinic=clinic,
        conversation=conversation,
        direction="inbound",
        kind="patient",
        from_number="+16175550000",
        to_number="+15555550100",
        body="hello",
        provider="telnyx",
        provider_message_id=f"m-{next(_counter)}",
        status="received",
    )


def _webhook_event(clinic):
    return WebhookEvent.objects.create(clinic=clinic, provider="telnyx", event_id=f"e-{next(_counter)}", event_type="x")


def _knowledge_document(clinic):
    from knowledge.services import document_upsert

    return document_upsert(clinic=clinic, title=f"Doc {next(_counter)}", body="Parking is free.", source="admin")[0]


def _provider(clinic):
    from emr.models import Provider

    return Provider.objects.create(clinic=clinic, name=f"Dr. {next(_counter)}")


def _emr_config(clinic):
    from emr.models import EmrConfig

    return EmrConfig.objects.create(clinic=clinic)


def _booking(clinic):
    from datetime import UTC, datetime, timedelta

    from bookings.models import Booking

    start = datetime(2026, 12, 1, 15, tzinfo=UTC) + timedelta(hours=next(_counter))
    return Booking.objects.create(
        clinic=clinic,
        patient_phone="+16175550123",
        service=_service(clinic),
        provider=_provider(clinic),
        start=start,
        end=start + timedelta(minutes=30),
    )


def _manual_booking(clinic):
    from bookings.models import ManualBookingRequest

    booking = _booking(clinic)
    booking.status = "awaiting_staff"
    booking.save()
    return ManualBookingRequest.objects.get(pk=booking.pk)


def _staff_alert(clinic):
    from medspa.models import StaffAlert

    n = next(_counter)
    return StaffAlert.objects.create(clinic=clinic, kind="payment", text="Check payment", dedupe_key=f"t-{n}")


def _payment_config(clinic):
    from payments.models import PaymentConfig

    return PaymentConfig.objects.create(clinic=clinic)


def _payment(clinic):
    from payments.models import Payment

    n = next(_counter)
    return Payment.objects.create(
        clinic=clinic, booking=_booking(clinic), provider="sandbox", amount_cents=5000, idempotency_key=f"k-{n}"
    )


def _outbox_item(clinic):
    from django.utils import timezone

    from payments.models import OutboxItem

    return OutboxItem.objects.create(
        clinic=clinic, payment=_payment(clinic), kind="refund", status="failed", next_attempt_at=timezone.now()
    )


def _lifecycle_settings(clinic):
    from lifecycle.models import LifecycleSettings

    return LifecycleSettings.objects.create(clinic=clinic)


def _scheduled_text(clinic):
    from django.utils import timezone

    from lifecycle.models import ScheduledText

    booking = _booking(clinic)
    return ScheduledText.objects.create(
        clinic=clinic,
        booking=booking,
        patient_phone=booking.patient_phone,
        kind="reminder",
        due_at=timezone.now(),
        send_at=timezone.now(),
        why="test",
    )


def _waitlist_entry(clinic):
    from datetime import UTC, datetime, timedelta

    from waitlist.models import WaitlistEntry

    start = datetime(2026, 12, 1, 15, tzinfo=UTC)
    return WaitlistEntry.objects.create(
        clinic=clinic,
        conversation=_conversation(clinic),
        patient_phone="+16175550123",
        service=_service(clinic),
        window_start=start,
        window_end=start + timedelta(days=1),
        label="Tuesday",
        state="waiting",
        joined_at=start,
        expires_at=start + timedelta(days=1),
    )


def _waitlist_settings(clinic):
    from waitlist.models import WaitlistSettings

    return WaitlistSettings.objects.create(clinic=clinic)


# One way to make a row of each clinic-scoped model for a given clinic.
FACTORIES = {
    Clinic: lambda clinic: clinic,
    Service: _service,
    ClinicMembership: _membership,
    Lead: _lead,
    AuditEvent: _audit_event,
    OptOut: _opt_out,
    PhoneNumber: _phone_number,
    ClinicMessaging: _clinic_messaging,
    Conversation: _conversation,
    Message: _message,
    WebhookEvent: _webhook_event,
    KnowledgeDocument: _knowledge_document,
    "emr.Provider": _provider,
    "emr.EmrConfig": _emr_config,
    "bookings.Booking": _booking,
    "bookings.ManualBookingRequest": _manual_booking,
    "medspa.StaffAlert": _staff_alert,
    "payments.PaymentConfig": _payment_config,
    "payments.Payment": _payment,
    "payments.OutboxItem": _outbox_item,
    "lifecycle.LifecycleSettings": _lifecycle_settings,
    "lifecycle.ScheduledText": _scheduled_text,
    "waitlist.WaitlistEntry": _waitlist_entry,
    "waitlist.WaitlistSettings": _waitlist_settings,
}
FACTORIES = {apps.get_model(k) if isinstance(k, str) else k: v for k, v in FACTORIES.items()}

REGISTRY = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
SCOPED = [(m, a) for m, a in REGISTRY if isinstance(a, ClinicScopedAdmin)]
PLATFORM = [(m, a) for m, a in REGISTRY if not isinstance(a, ClinicScopedAdmin)]


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_admin_is_scoped_or_platform_only():
    for model, model_admin in REGISTRY:
        assert isinstance(model_admin, ClinicScopedAdmin | PlatformAdmin), model
    for model, _ in SCOPED:
        assert is_clinic_scoped(model), f"{model} has a scoped admin but an unscoped manager"
        assert model in FACTORIES, f"add a factory for {model._meta.label} to this test"


@pytest.fixture
def two_clinics(db):
    clinic_a, clinic_b = make_clinic("clinic-a"), make_clinic("clinic-b")
    return clinic_a, clinic_b, make_staff("staff-a", clinic_a)


def _scoped_querysets(form, clinic_b):
    """(field name, rows of clinic B) for every clinic-scoped choice field of ``form``."""
    leaks = []
    for name, field in form.fields.items():
        queryset = getattr(field, "queryset", None)
        if queryset is not None and is_clinic_scoped(queryset.model):
            leaked = [obj.pk for obj in queryset if obj.clinic_id == clinic_b.pk]
            if leaked:
                leaks.append((name, leaked))
    return leaks


@pytest.mark.parametrize(("model", "model_admin"), SCOPED, ids=[m._meta.label for m, _ in SCOPED])
def test_scoped_admin_hides_other_clinic(client, two_clinics, model, model_admin):
    clinic_a, clinic_b, staff = two_clinics
    own, other = FACTORIES[model](clinic_a), FACTORIES[model](clinic_b)
    before = model_to_dict(model._default_manager.get(pk=other.pk))
    client.force_login(staff)

    # List view: only clinic A's rows; list filters offer nothing of clinic B.
    response = client.get(_url(model, "changelist"))
    assert response.status_code == 200
    listed = {obj.pk for obj in response.context["cl"].result_list}
    assert own.pk in listed and other.pk not in listed
    for spec in response.context["cl"].filter_specs:
        field = getattr(spec, "field", None)
        if field is not None and field.is_relation and is_clinic_scoped(field.related_model):
            offered = field.related_model._default_manager.filter(pk__in=[pk for pk, _ in spec.lookup_choices])
            assert all(obj.clinic_id != clinic_b.pk for obj in offered), spec.title

    # Search cannot reach across either.
    response = client.get(_url(model, "changelist"), {"q": "clinic-b"})
    assert other.pk not in {obj.pk for obj in response.context["cl"].result_list}

    # Another clinic's row is absent, not forbidden: 404 on every per-object view, GET and POST.
    for view in ("change", "delete", "history"):
        assert client.get(_url(model, view, other.pk)).status_code == 404, view
    assert client.post(_url(model, "change", other.pk), {}).status_code == 404
    assert client.post(_url(model, "delete", other.pk), {"post": "yes"}).status_code == 404

    # Every action, given clinic B's id, leaves the row as it was.
    for action in model_admin.get_actions(_request(staff)):
        client.post(_url(model, "changelist"), {"action": action, "_selected_action": [other.pk], "post": "yes"})
    assert model._default_manager.filter(pk=other.pk).exists()
    assert model_to_dict(model._default_manager.get(pk=other.pk)) == before

    # Forms (own row's change form, the add form, inlines) offer no clinic B rows to reference.
    response = client.get(_url(model, "change", own.pk))
    assert response.status_code == 200
    assert _scoped_querysets(response.context["adminform"].form, clinic_b) == []
    for inline in response.context["inline_admin_formsets"]:
        assert _scoped_querysets(inline.formset.empty_form, clinic_b) == []
    if model_admin.has_add_permission(_request(staff)):
        response = client.get(_url(model, "add"))
        assert response.status_code == 200
        assert _scoped_querysets(response.context["adminform"].form, clinic_b) == []

    # Autocomplete (served by the target model's admin) returns nothing of clinic B.
    for field_name in model_admin.get_autocomplete_fields(_request(staff)):
        target = model._meta.get_field(field_name).related_model
        response = client.get(
            reverse("admin:autocomplete"),
            {"app_label": model._meta.app_label, "model_name": model._meta.model_name, "field_name": field_name},
        )
        if response.status_code == 200 and is_clinic_scoped(target):
            ids = {int(r["id"]) for r in response.json()["results"]}
            assert not ids & set(target._default_manager.for_clinic(clinic_b).values_list("pk", flat=True))
        else:
            assert response.status_code == 403  # a platform table (users): not for clinic staff at all


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


@pytest.mark.parametrize(("model", "model_admin"), PLATFORM, ids=[m._meta.label for m, _ in PLATFORM])
def test_platform_admins_are_closed_to_clinic_staff(client, two_clinics, model, model_admin):
    _, _, staff = two_clinics
    client.force_login(staff)
    assert client.get(_url(model, "changelist")).status_code == 403
    assert client.get(_url(model, "add")).status_code == 403


def test_superuser_sees_every_clinic(admin_client, two_clinics):
    clinic_a, clinic_b, _ = two_clinics
    response = admin_client.get(_url(Clinic, "changelist"))
    assert {c.pk for c in response.context["cl"].result_list} == {clinic_a.pk, clinic_b.pk}


def test_staff_cannot_create_a_row_for_another_clinic(client, two_clinics):
    _, clinic_b, staff = two_clinics
    client.force_login(staff)
    response = client.post(
        _url(Service, "add"),
        {
            "clinic": clinic_b.pk,
            "name": "Sneaky",
            "price_type": "fixed",
            "price_cents": 100,
            "duration_minutes": 30,
            "deposit_cents": 0,
        },
    )
    assert response.status_code == 200
    assert "clinic" in response.context["adminform"].form.errors
    assert not Service.objects.filter(name="Sneaky").exists()


def test_staff_cannot_point_own_row_at_other_clinic_service(client, two_clinics):
    clinic_a, clinic_b, staff = two_clinics
    lead = _lead(clinic_a)
    foreign = _service(clinic_b)
    client.force_login(staff)
    data = {"name": lead.name, "phone": lead.phone, "email": "", "service_of_interest": foreign.pk, "message": ""}
    response = client.post(_url(Lead, "change", lead.pk), data)
    assert response.status_code == 200
    assert "service_of_interest" in response.context["adminform"].form.errors
    lead.refresh_from_db()
    assert lead.service_of_interest_id != foreign.pk


def test_a_member_of_two_clinics_cannot_cross_link_them(two_clinics):
    from django.core.exceptions import ValidationError

    clinic_a, clinic_b, _ = two_clinics
    lead = _lead(clinic_a)
    lead.service_of_interest = _service(clinic_b)
    with pytest.raises(ValidationError):
        lead.full_clean()


# --- The staff API ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "factory"), [("leads", _lead), ("bookings", _booking), ("conversations", _conversation)]
)
def test_staff_api_lists_only_own_clinic(two_clinics, token_client, api_client, resource, factory):
    clinic_a, clinic_b, staff = two_clinics
    own, other = factory(clinic_a), factory(clinic_b)
    client = token_client(staff)

    response = client.get(f"/api/clinics/{clinic_a.slug}/{resource}")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [own.pk]

    # Another clinic, or one that does not exist: the same 404.
    assert client.get(f"/api/clinics/{clinic_b.slug}/{resource}").status_code == 404
    assert client.get(f"/api/clinics/no-such-clinic/{resource}").status_code == 404
    assert api_client.get(f"/api/clinics/{clinic_a.slug}/{resource}").status_code == 401
    assert other.pk not in [row["id"] for row in response.json()["results"]]


def test_staff_api_list_is_paginated_and_audited(two_clinics, token_client):
    clinic_a, _, staff = two_clinics
    for _ in range(3):
        _lead(clinic_a)
    body = token_client(staff).get(f"/api/clinics/{clinic_a.slug}/leads", {"page_size": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    event = AuditEvent.objects.filter(action="list", object_type="leads.lead").get()
    assert event.actor == "staff-a" and event.clinic_id == clinic_a.pk and event.channel == "api"
    assert event.detail == {"rows": 2, "page": "1"}


# --- The front desk: the home page and the conversation thread's endpoints (issue 19) ---------------------------


def test_front_desk_home_shows_nothing_of_another_clinic(client, two_clinics):
    from datetime import timedelta

    from django.utils import timezone

    from bookings.models import Booking
    from medspa.alerts import staff_alert
    from medspa.models import StaffAlert

    clinic_a, clinic_b, staff = two_clinics
    for clinic in (clinic_a, clinic_b):
        conversation = _conversation(clinic)
        Conversation.objects.filter(pk=conversation.pk).update(
            needs_staff=True, state="engaged", patient_name=f"Waiting {clinic.slug}"
        )
        in_progress = _conversation(clinic)
        Conversation.objects.filter(pk=in_progress.pk).update(state="offering", patient_name=f"Talking {clinic.slug}")
        booking = _booking(clinic)
        start = timezone.now() + timedelta(minutes=5)
        Booking.objects.filter(pk=booking.pk).update(
            start=start, end=start + timedelta(minutes=30), status="confirmed", patient_name=f"Booked {clinic.slug}"
        )
        staff_alert(clinic=clinic, kind=StaffAlert.Kind.EMR_ERROR, text=f"EMR down at {clinic.slug}", obj=clinic)
    client.force_login(staff)

    home = client.get(reverse("admin:index")).content.decode()
    for what in ("Waiting", "Talking", "Booked", "EMR down at"):
        assert f"{what} clinic-a" in home or f"{what} at clinic-a" in home, what
    assert "clinic-b" not in home


@pytest.mark.parametrize("view", ["thread", "reply", "take_over", "hand_back"])
def test_another_clinics_thread_endpoints_are_absent(client, two_clinics, view):
    _, clinic_b, staff = two_clinics
    other = _conversation(clinic_b)
    Conversation.objects.filter(pk=other.pk).update(owner="staff", needs_staff=True)
    before = model_to_dict(Conversation.objects.get(pk=other.pk))
    client.force_login(staff)
    url = reverse(f"admin:conversation_conversation_{view}", args=[other.pk])
    response = (
        client.get(url, {"after": 0}) if view == "thread" else client.post(url, {"staff_reply": "hi", "steal": "1"})
    )
    assert response.status_code == 404
    assert model_to_dict(Conversation.objects.get(pk=other.pk)) == before
    assert not Message.objects.filter(conversation=other).exists()


# --- Outcomes (issue 19 item 5): staff of clinic A see none of clinic B's figures ---------------------------------


@pytest.mark.parametrize("export", [False, True], ids=["page", "csv"])
def test_outcomes_show_nothing_of_another_clinic(client, two_clinics, export):
    clinic_a, clinic_b, staff = two_clinics
    _conversation(clinic_a)
    for _ in range(3):
        booking = _booking(clinic_b)  # three conversations of B, each booked
        conversation = _conversation(clinic_b)
        booking.__class__.objects.filter(pk=booking.pk).update(status="confirmed", conversation=conversation)
    client.force_login(staff)
    query = {"format": "csv"} if export else {}

    own = client.get(reverse("reports:outcomes"), query)
    assert own.status_code == 200
    text = own.content.decode()
    assert "Clinic B" not in text and "clinic-b" not in text
    if export:
        assert "Conversations opened,1" in text and "Booked,0" in text
    else:
        assert own.context["outcomes"].clinic == clinic_a
        assert own.context["outcomes"].opened == 1 and own.context["outcomes"].stages["booked"] == 0
        assert f'value="{clinic_b.pk}"' not in text  # not even offered in the clinic choice

    foreign = client.get(reverse("reports:outcomes"), {**query, "clinic": clinic_b.pk})
    assert foreign.status_code == 400
    assert foreign.context["outcomes"] is None and b"Clinic B" not in foreign.content


def test_staff_are_told_only_of_their_own_clinics_alerts(two_clinics, django_capture_on_commit_callbacks, settings):
    from django.core import mail

    from medspa.alerts import staff_alert
    from medspa.models import StaffAlert

    clinic_a, clinic_b, staff_a = two_clinics
    staff_b = make_staff("staff-b", clinic_b)
    for user in (staff_a, staff_b):
        user.email = f"{user.username}@example.com"
        user.save()
    Clinic.objects.filter(pk=clinic_a.pk).update(staff_mobile="+16175550142")
    Clinic.objects.filter(pk=clinic_b.pk).update(staff_mobile="+16175550143")
    conversation_b = _conversation(Clinic.objects.get(pk=clinic_b.pk))
    with django_capture_on_commit_callbacks(execute=True):
        staff_alert(
            clinic=conversation_b.clinic,
            kind=StaffAlert.Kind.URGENT,
            text="Conversation needs a call.",
            obj=conversation_b,
        )
    [email] = mail.outbox
    assert email.to == ["staff-b@example.com"] and "[Clinic B]" in email.subject
    texted = set(Message.objects.filter(conversation__isnull=True).values_list("to_number", flat=True))
    assert texted == {"+16175550143"}  # clinic B's staff mobile, not A's
