"""Retry schedules: how long a failed piece of work (a text to send, an outbox step, a webhook event) waits before
its next attempt, and how many attempts it gets before a person decides.

A schedule lists the delays in seconds: the first before the second attempt, the second before the third, and so on;
past the list the last delay repeats. ``jitter`` stretches each delay by up to that fraction at random (0.25: up to
25% longer), so that many rows failed together do not all fall due in the same second.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[int, ...]  # seconds before attempts 2, 3, ...
    jitter: float = 0.0

    @property
    def max_attempts(self) -> int:
        """The first attempt and one retry per delay."""
        return len(self.delays) + 1

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` attempts (1 or more) before the next one."""
        base = self.delays[min(attempts - 1, len(self.delays) - 1)]
        return base * (1 + random.random() * self.jitter) if self.jitter else base  # noqa: S311  (jitter, not security)

    def next_at(self, now: datetime, attempts: int) -> datetime:
        """When the next attempt is due, after ``attempts`` attempts made by ``now``."""
        return now + timedelta(seconds=self.delay(attempts))
