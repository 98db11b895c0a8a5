import uuid

from django.utils import timezone

from . import BaseSmsBackend, OutboundSms, ProviderMessage, SendError, SendResult

# Sent texts, in order, for tests to read (like django.core.mail.outbox).
outbox: list[OutboundSms] = []
# Errors to raise, one per coming send attempt (a test appends SendError(...) to make the next send fail).
failures: list[SendError] = []
# What "the provider" holds: provider id -> ProviderMessage (status "sent"; a test may set another status).
sent: dict[str, ProviderMessage] = {}
# Sent texts by provider id, to tell which OutboundSms a ProviderMessage is.
sent_sms: dict[str, OutboundSms] = {}
# Scripted answers for the coming find_sent calls, used in order: a list of ProviderMessage, None (cannot tell) or
# a SendError to raise. Empty: answered from what was sent.
lookups: list = []


class LocmemBackend(BaseSmsBackend):
    """Tests: keeps each text in ``outbox``; can be told to fail through ``failures``; answers status questions
    from what it sent (``sent``), or as a test scripts them (``sent[id]`` replaced, ``lookups``)."""

    name = "locmem"

    def send(self, sms: OutboundSms) -> SendResult:
        if failures:
            raise failures.pop(0)
        outbox.append(sms)
        provider_id = f"locmem-{uuid.uuid4()}"
        sent[provider_id] = ProviderMessage(provider_id, "sent", sms.body, timezone.now())
        sent_sms[provider_id] = sms
        return SendResult(provider_message_id=provider_id)

    def fetch_status(self, provider_message_id: str) -> str | None:
        message = sent.get(provider_message_id)
        return message.status if message else None

    def find_sent(self, sms: OutboundSms, *, since) -> list[ProviderMessage] | None:
        if lookups:
            answer = lookups.pop(0)
            if isinstance(answer, SendError):
                raise answer
            return answer
        return [
            message
            for provider_id, message in sent.items()
            if sent_sms[provider_id].from_number == sms.from_number
            and sent_sms[provider_id].to_number == sms.to_number
            and message.created_at >= since
        ]


def set_status(provider_message_id: str, status: str) -> None:
    """A test moves a sent text on at "the provider" (e.g. delivered)."""
    message = sent[provider_message_id]
    sent[provider_message_id] = ProviderMessage(message.provider_message_id, status, message.body, message.created_at)


def reset():
    outbox.clear()
    failures.clear()
    sent.clear()
    sent_sms.clear()
    lookups.clear()
