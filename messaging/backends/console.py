import sys
import uuid

from . import BaseSmsBackend, OutboundSms, SendResult


class ConsoleBackend(BaseSmsBackend):
    """Development: prints each text to standard output instead of sending it (the embedded default)."""

    name = "console"
    stream = None

    def send(self, sms: OutboundSms) -> SendResult:
        stream = self.stream or sys.stdout
        stream.write(f"\n--- SMS {sms.from_number} -> {sms.to_number} ---\n{sms.body}\n")
        for url in sms.media_urls:
            stream.write(f"[media] {url}\n")
        stream.flush()
        return SendResult(provider_message_id=f"console-{uuid.uuid4()}")
