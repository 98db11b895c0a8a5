"""Retrieval quality on a set of patient-style questions with the document that should answer each.

Two sets for the demo clinic: ``demo-clinic-questions.json`` (written with the documents, used by the suite) and
the outside questions (``eval/OUTSIDE-QUESTIONS.md``: written by someone who read only the clinic file), split
into a dev half, which may be read while tuning, and a test half, which is only run for its figures.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction

from medspa.clinic_file import DEMO_CLINIC_FILE, clinic_file_load, clinic_file_read

from .services import knowledge_search

EVAL_DIR = settings.BASE_DIR / "knowledge" / "eval"
DEMO_QUESTIONS = EVAL_DIR / "demo-clinic-questions.json"
HALVES = {"dev": EVAL_DIR / "outside-questions-dev.json", "test": EVAL_DIR / "outside-questions-test.json"}


@dataclass
class EvalReport:
    total: int = 0
    hits_at_1: int = 0
    hits_at_3: int = 0
    misses: list = field(default_factory=list)  # (question, expected, top three titles)

    @property
    def recall_at_1(self):
        return self.hits_at_1 / self.total if self.total else 0.0

    @property
    def recall_at_3(self):
        return self.hits_at_3 / self.total if self.total else 0.0


def knowledge_evaluate(*, clinic, questions_file: str | Path = DEMO_QUESTIONS) -> EvalReport:
    report = EvalReport()
    for item in json.loads(Path(questions_file).read_text()):
        results = knowledge_search(clinic=clinic, query=item["question"], k=3)
        titles = [r["title"] for r in results if r["kind"] == "document"][:3]
        report.total += 1
        report.hits_at_1 += titles[:1] == [item["expected"]]
        report.hits_at_3 += item["expected"] in titles
        if titles[:1] != [item["expected"]]:
            report.misses.append((item["question"], item["expected"], titles))
    return report


def knowledge_evaluate_demo(*, questions_file: str | Path) -> EvalReport:
    """The demo clinic as the clinic file describes it, indexed by the code as it is now (whatever the database
    holds, seeded earlier or not), inside a transaction that is rolled back: it changes nothing."""
    with transaction.atomic():
        clinic = clinic_file_load(clinic_file_read(DEMO_CLINIC_FILE)).clinic
        report = knowledge_evaluate(clinic=clinic, questions_file=questions_file)
        transaction.set_rollback(True)
    return report
