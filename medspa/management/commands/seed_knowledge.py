import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from medspa.clinic_file import DEMO_CLINIC_FILE, ClinicFileError, clinic_file_load, clinic_file_read, clinic_file_size


class Command(BaseCommand):
    help = (
        "Load a clinic file into the database: the clinic's profile (name, address, time zone, texting and booking "
        "policies), its service catalog with prices and deposits, its SMS phone numbers, its knowledge documents "
        "(indexed for the assistant's answers) and its providers with their working hours. Each entry is matched "
        "by name (the clinic by slug), so the load is idempotent: a second run changes nothing, and a changed file "
        "updates in place; the summary says what was created, updated or unchanged. A large file shows a progress "
        'bar (hidden with --verbosity 0). The original plan\'s knowledge seed, {"clinic_id": SLUG, '
        '"documents": [...]}, is accepted too.'
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            nargs="?",
            default=str(DEMO_CLINIC_FILE),
            help="The clinic file (JSON) to load; default: the demo clinic, fixtures/demo-clinic.json. Its sections: "
            "clinic, services, phone_numbers, documents, providers (see that file for an example of each).",
        )
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
        if report.counts.get("clinic", {}).get("created"):
            verdict = "created"
        else:
            verdict = "updated" if report.changed else "already up to date"
        self.stdout.write(self.style.SUCCESS(f"{report.clinic.slug}: {verdict} ({report.summary()})"))
