"""With the broker down, work written to the database is never lost and never fails its caller: ``enqueue`` says
so and a sweep queues it again."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from kombu.exceptions import OperationalError

from medspa.alerts import staff_alert, staff_alerts_email_unsent
from medspa.models import StaffAlert
from medspa.queueing import ENQUEUE_FAILED, enqueue
from medspa.tasks import email_staff_alert

from .conftest import make_clinic, make_staff


@pytest.fixture
def broker_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(email_staff_alert, "apply_async", refuse)
    return monkeypatch


def test_enqueue_with_the_broker_down_returns_false_and_counts(broker_down):
    before = ENQUEUE_FAILED.labels("medspa.email_staff_alert")._value.get()
    assert enqueue(email_staff_alert, 1) is False
    assert ENQUEUE_FAILED.labels("medspa.email_staff_alert")._value.get() == before + 1


def test_an_alert_raised_while_the_broker_is_down_is_emailed_by_the_sweep(
    db, broker_down, django_capture_on_commit_callbacks, time_machine
):
    clinic = make_clinic("glow")
    user = make_staff("owner", clinic)
    user.email = "owner@glow.example"
    user.save()
    with django_capture_on_commit_callbacks(execute=True):
        alert = staff_alert(clinic=clinic, kind=StaffAlert.Kind.HANDOFF, text="Conversation #1 needs a person.")
    assert mail.outbox == [] and StaffAlert.objects.get(pk=alert.pk).emailed_at is None  # the caller did not fail
    broker_down.undo()
    assert staff_alerts_email_unsent() == []  # a minute's grace: its own task may still come
    time_machine.move_to(timezone.now() + timedelta(minutes=2))
    assert staff_alerts_email_unsent() == [alert.pk]
    assert len(mail.outbox) == 1 and StaffAlert.objects.get(pk=alert.pk).emailed_at is not None
    assert staff_alerts_email_unsent() == []  # emailed: once
