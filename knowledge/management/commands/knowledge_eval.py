from django.core.management.base import BaseCommand, CommandError

from knowledge.evaluation import DEMO_QUESTIONS, knowledge_evaluate
from medspa.models import Clinic


class Command(BaseCommand):
    help = "Print recall@1 and recall@3 of knowledge search on an evaluation set (default: the demo clinic's)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default=str(DEMO_QUESTIONS))
        parser.add_argument("--clinic", default="demo-clinic-001")

    def handle(self, *args, file, clinic, **options):
        target = Clinic.objects.filter(slug=clinic).first()
        if target is None:
            raise CommandError(f"No clinic {clinic!r}: run seed_knowledge first.")
        report = knowledge_evaluate(clinic=target, questions_file=file)
        for question, expected, titles in report.misses:
            self.stdout.write(f"  miss@1: {question!r}\n     expected {expected!r}\n     got {titles}")
        self.stdout.write(
            f"{report.total} questions: recall@1 {report.recall_at_1:.3f}, recall@3 {report.recall_at_3:.3f}"
        )
