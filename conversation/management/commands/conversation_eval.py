from django.core.management.base import BaseCommand

from conversation.corpus import corpus
from conversation.evaluation import evaluate


class Command(BaseCommand):
    help = (
        "Run the assistant (rules engine) on the outside-written corpus in conversation/eval/corpus/ and print how "
        "many items pass, per half. Details are printed for the dev half only: the test half is for reporting. "
        "Changes nothing in the database (one transaction, rolled back). Needs the dev requirements (time-machine)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--half", choices=["dev", "test", "all"], default="all")
        parser.add_argument("--failures", action="store_true", help="list the dev half's failures with replies")
        parser.add_argument(
            "--files",
            default="*.json",
            help="only the corpus files matching these patterns (comma-separated), e.g. 'texts-1[5-8].json'",
        )

    def handle(self, *args, half, failures, files, **options):
        report = evaluate(items=corpus(half, pattern=files))
        if failures:
            for outcome in report.outcomes:
                if outcome.half != "dev" or outcome.passed:
                    continue
                self.stdout.write(f"FAIL {outcome.item_id} ({outcome.kind}): {'; '.join(outcome.problems)}")
                for text, replies in outcome.replies:
                    self.stdout.write(f"   patient: {text!r}")
                    for reply in replies:
                        self.stdout.write(f"   clinic:  {reply!r}")
        for name in ("dev", "test"):
            texts, conversations = report.figure(name, "text"), report.figure(name, "conversation")
            if texts[1] or conversations[1]:
                self.stdout.write(
                    f"{name} half: texts {texts[0]}/{texts[1]}, conversations {conversations[0]}/{conversations[1]}"
                )
