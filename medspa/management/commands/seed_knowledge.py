import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from medspa.clinic_file import DEMO_CLINIC_FILE, ClinicFileError, clinic_file_load, clinic_file_read, clinic_file_size


class Command(BaseCommand):
    help = (
        "Load a clinic file (default: fixtures/demo-clinic.json): profile and service catalog. "
        "Idempotent: a second run changes nothing; a changed file updates in place."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default=str(DEMO_CLINIC_FILE))
        parser.add_argument("--clinic", metavar="SLUG", help="Load into this clinic slug instead of the file's.")
        parser.add_argument(
            "--replace", action="store_true", help="Deactivate the clinic's services the file no longer lists."
        )

    def handle(self, *args, file, clinic, replace, **options):
        try:
            data = clinic_file_read(file)
            with tqdm(
                total=clinic_file_size(data),
                desc="loading",
                unit="item",
                disable=options["verbosity"] < 1,
                file=sys.stderr,
            ) as bar:
                report = clinic_file_load(data, slug=clinic, replace=replace, progress=bar.update)
        except ClinicFileError as exc:
            raise CommandError(str(exc)) from None
        verdict = "updated" if report.changed else "already up to date"
        self.stdout.write(self.style.SUCCESS(f"{report.clinic.slug}: {verdict} ({report.summary()})"))
