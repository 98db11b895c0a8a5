from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from medspa.two_factor import two_factor_reset


class Command(BaseCommand):
    help = (
        "Remove a user's two-factor devices (authenticator app and recovery codes), e.g. the only superuser's lost "
        "phone. Audited. Where two-factor login is required, the user sets it up again at their next login."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        removed = two_factor_reset(user, channel="command")
        self.stdout.write(self.style.SUCCESS(f"Two-factor login reset for '{username}' ({removed} device(s) removed)."))
