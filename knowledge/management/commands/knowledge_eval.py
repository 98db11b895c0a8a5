from django.core.management.base import BaseCommand, CommandError

from knowledge.evaluation import DEMO_QUESTIONS, HALVES, knowledge_evaluate, knowledge_evaluate_demo
from medspa.models import Clinic


class Command(BaseCommand):
    help = (
        "Print recall@1 and recall@3 of knowledge search on an evaluation set. Without FILE: the demo clinic file, "
        "freshly indexed in a transaction that is rolled back, on its own questions, or with --half dev|dev-2|test on "
        "the outside questions (knowledge/eval/OUTSIDE-QUESTIONS.md); the test half prints its figures only. "
        "With FILE: that set on a clinic of the database (--clinic)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="a questions file (default: the demo clinic's own set)")
        parser.add_argument("--clinic", default="demo-clinic-001", help="the clinic of the database FILE is run on")
        parser.add_argument(
            "--half",
            choices=sorted(HALVES),
            help="the outside questions' dev half (both dev files), dev-2 (the second author's alone) or test half",
        )

    def handle(self, *args, file, clinic, half, **options):
        if half and file:
            raise CommandError("Give a questions file or --half, not both.")
        if file:
            target = Clinic.objects.filter(slug=clinic).first()
            if target is None:
                raise CommandError(f"No clinic {clinic!r}: run seed_knowledge first.")
            report = knowledge_evaluate(clinic=target, questions_file=file)
        else:
            report = knowledge_evaluate_demo(questions_file=HALVES[half] if half else DEMO_QUESTIONS)
        if half != "test":  # the test half is only run for its figures: its questions are never shown
            for question, expected, titles in report.misses:
                self.stdout.write(f"  miss@1: {question!r}\n     expected {expected!r}\n     got {titles}")
        label = f"{half} half" if half else "questions"
        self.stdout.write(
            f"{report.total} {label}: recall@1 {report.recall_at_1:.3f}, recall@3 {report.recall_at_3:.3f}"
        )
