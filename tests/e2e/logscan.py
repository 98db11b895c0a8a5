"""A pytest plugin (loaded by tests/e2e/test_logs_clean.py): what patient data the run used, and where it appears
in the app's logs.

Every e2e scenario's patients, whatever file it is in and however it builds them, end up as rows: leads, texts,
conversations, bookings, opt-outs. At the end of each scenario, before its fixtures empty the database, their
numbers, names, e-mails and texts are collected (``pytest_runtest_teardown``); the check that scans the logs is
moved to the end of the run (``pytest_collection_modifyitems``), so it sees every scenario that ran before it.
"""

import re
from dataclasses import dataclass, field

import pytest

from .stack import FAKES

USED = pytest.StashKey["PatientData"]()
# Shorter texts ("2", "STOP", "Yes please") are ordinary words in any log; a patient's sentence is not.
MIN_TEXT = 12


@dataclass
class PatientData:
    numbers: set = field(default_factory=set)  # E.164
    names: set = field(default_factory=set)
    emails: set = field(default_factory=set)
    texts: set = field(default_factory=set)
    scenarios: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # scenarios whose data could not be read

    def add_number(self, number):
        if number and number.startswith("+1") and len(number) == 12:
            self.numbers.add(number)

    def add_text(self, text):
        for line in (text or "").splitlines():
            if len(line.strip()) >= MIN_TEXT:
                self.texts.add(line.strip())

    def needles(self) -> dict[str, str]:
        """Every string that must not appear in a log line, and what it is (for the report)."""
        found = {}
        for number in self.numbers:
            digits = number[2:]  # 10 digits: also inside +1..., 1... and percent-encoded %2B1...
            area, exchange, line = digits[:3], digits[3:6], digits[6:]
            for spelling in (
                digits,
                f"({area}) {exchange}-{line}",
                f"{area}-{exchange}-{line}",
                f"{area}.{exchange}.{line}",
            ):
                found[spelling] = f"patient number {number}"
        for name in self.names:
            if len(name) >= 5:
                for spelling in (name, name.replace(" ", "+"), name.replace(" ", "%20")):  # and as a query has it
                    found[spelling] = "patient name"
        for email in self.emails:
            found[email] = found[email.replace("@", "%40")] = "patient e-mail"
        for text in self.texts:
            found[text] = "patient text"
        return found


def harvest(data: PatientData, label: str) -> None:
    """The patient data in the database now (the scenario's rows)."""
    from bookings.models import Booking
    from conversation.models import Conversation
    from leads.models import Lead
    from messaging.models import Message, OptOut

    for lead in Lead.objects.all():
        data.add_number(lead.phone)
        data.names.add(lead.name)
        if lead.email:
            data.emails.add(lead.email)
        data.add_text(lead.message)
    for direction, number, body in Message.objects.values_list("direction", "from_number", "body"):
        if direction == Message.Direction.INBOUND:
            data.add_number(number)
            data.add_text(body)
    for number in Message.objects.filter(direction=Message.Direction.OUTBOUND).values_list("to_number", flat=True):
        data.add_number(number)
    for model in (Conversation, Booking):
        for number, name in model.objects.values_list("patient_phone", "patient_name"):
            data.add_number(number)
            if name:
                data.names.add(name)
    for number in OptOut.objects.values_list("phone", flat=True):
        data.add_number(number)
    data.scenarios.append(label)


def app_log_hits(stack, data: PatientData) -> list[str]:
    """Lines of the app's processes (web, workers, beat: not the fakes' or Redis's) that carry patient data."""
    needles = data.needles()
    pattern = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True))) if needles else None
    hits = []
    for name, process in stack.processes.items():
        if name in FAKES or name == "redis" or pattern is None:
            continue
        for number, line in enumerate(process.log_text().splitlines(), 1):
            match = pattern.search(line)
            if match:
                hits.append(f"{name}.log:{number}: {needles[match.group(0)]}: {line[:300]}")
    return hits


def runs_last(function):
    """Mark a test to run after every other test of the session."""
    function.runs_last = True
    return function


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    last = [item for item in items if getattr(getattr(item, "function", None), "runs_last", False)]
    items[:] = [item for item in items if item not in last] + last


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    # Before the fixtures' teardown: transactional_db empties the database after the scenario.
    if item.get_closest_marker("e2e") and "e2e" in getattr(item, "funcargs", {}):
        data = item.config.stash.setdefault(USED, PatientData())
        blocker = item.funcargs.get("django_db_blocker")
        try:
            with blocker.unblock():
                harvest(data, item.nodeid)
        except Exception as exc:  # the scan must then fail: it would not know this scenario's patients
            data.problems.append(f"{item.nodeid}: {type(exc).__name__}: {exc}")
    return (yield)
