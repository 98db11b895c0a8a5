"""Retrieval quality on a set of patient-style questions with the document that should answer each.

Two sets for the demo clinic: ``demo-clinic-questions.json`` (written with the documents, used by the suite) and
the outside questions (``eval/OUTSIDE-QUESTIONS.md``: written by someone who read only the clinic file), split
into a dev half, which may be read while tuning, and a test half, which is only run for its figures. A second
outside author's set (``outside-questions-dev-2.json``) is part of the dev half and can be run on its own
(``dev-2``) as a check of whether a change made on the first author's wording carries over.
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
DEV_1 = EVAL_DIR / "outside-questions-dev.json"
DEV_2 = EVAL_DIR / "outside-questions-dev-2.json"
# Each half is one or more question files, read in order as one set.
HALVES = {"dev": (DEV_1, DEV_2), "dev-2": (DEV_2,), "test": (EVAL_DIR / "outside-questions-test.json",)}


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


def _questions(questions_file) -> list[dict]:
    files = [questions_file] if isinstance(questions_file, str | Path) else list(questions_file)
    return [item for file in files for item in json.loads(Path(file).read_text())]


def knowledge_evaluate(*, clinic, questions_file: str | Path | tuple = DEMO_QUESTIONS) -> EvalReport:
    """``questions_file``: one file or several (a half), read as one set."""
    report = EvalReport()
    for item in _questions(questions_file):
        results = knowledge_search(clinic=clinic, query=item["question"], k=3)
        titles = [r["title"] for r in results if r["kind"] == "document"][:3]
        report.total += 1
        report.hits_at_1 += titles[:1] == [item["expected"]]
        report.hits_at_3 += item["expected"] in titles
        if titles[:1] != [item["expected"]]:
            report.misses.append((item["question"], item["expected"], titles))
    return report


def knowledge_evaluate_demo(*, questions_file: str | Path | tuple) -> EvalReport:
    """The demo clinic as the clinic file describes it, indexed by the code as it is now (whatever the database
    holds, seeded earlier or not), inside a transaction that is rolled back: it changes nothing."""
    with transaction.atomic():
        clinic = clinic_file_load(clinic_file_read(DEMO_CLINIC_FILE)).clinic
        report = knowledge_evaluate(clinic=clinic, questions_file=questions_file)
        transaction.set_rollback(True)
    return report
