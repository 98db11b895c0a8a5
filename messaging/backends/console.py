import sys
import uuid

from . import BaseSmsBackend, OutboundSms, SendResult

PREFIX = "console-"


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
        return SendResult(provider_message_id=f"{PREFIX}{uuid.uuid4()}")

    def fetch_status(self, provider_message_id: str) -> str | None:
        """What it printed counts as sent (any process's: the id says it was the console's)."""
        return "sent" if provider_message_id.startswith(PREFIX) else None

    # find_sent: cannot tell (None, the default): nothing is kept of what was printed.
