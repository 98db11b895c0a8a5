"""Retrieval quality on a set of patient-style questions with the document that should answer each."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from .services import knowledge_search

DEMO_QUESTIONS = settings.BASE_DIR / "knowledge" / "eval" / "demo-clinic-questions.json"


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
