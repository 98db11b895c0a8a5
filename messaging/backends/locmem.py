import uuid

from . import BaseSmsBackend, OutboundSms, SendError, SendResult

# Sent texts, in order, for tests to read (like django.core.mail.outbox).
outbox: list[OutboundSms] = []
# Errors to raise, one per coming send attempt (a test appends SendError(...) to make the next send fail).
failures: list[SendError] = []


class LocmemBackend(BaseSmsBackend):
    """Tests: keeps each text in ``outbox``; can be told to fail through ``failures``."""

    name = "locmem"

    def send(self, sms: OutboundSms) -> SendResult:
        if failures:
            raise failures.pop(0)
        outbox.append(sms)
        return SendResult(provider_message_id=f"locmem-{uuid.uuid4()}")


def reset():
    outbox.clear()
    failures.clear()
