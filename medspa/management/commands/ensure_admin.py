import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Make sure a superuser exists so the admin can be opened. Uses DJANGO_SUPERUSER_USERNAME (default 'admin') "
        "and DJANGO_SUPERUSER_PASSWORD; without the latter, generates a password and prints it once. The first login "
        "is with that password; the admin then asks to set up two-factor login when STAFF_2FA_REQUIRED_FOR_SUPERUSERS "
        "is on (the default with DEBUG off)."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True, is_active=True).exists():
            self.stdout.write("A superuser exists; reset a password with: python manage.py changepassword USERNAME")
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD") or secrets.token_urlsafe(18)
        User.objects.create_superuser(username=username, email="", password=password)
        if os.environ.get("DJANGO_SUPERUSER_PASSWORD"):
            self.stdout.write(self.style.SUCCESS(f"Superuser '{username}' created with DJANGO_SUPERUSER_PASSWORD."))
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Superuser '{username}' created. Password (shown once, not stored anywhere): {password}\n"
                    f"Change it any time with: python manage.py changepassword {username}"
                )
            )
        self.stdout.write(two_factor_note(username))


def two_factor_note(username):
    """How the first login goes: the password, then (required or not) the authenticator app."""
    if getattr(settings, "STAFF_2FA_REQUIRED_FOR_SUPERUSERS", False):
        first = (
            "Log in at /admin/ with this password; the admin then asks you to set up two-factor login (an "
            "authenticator app, and ten recovery codes to keep) before anything else."
        )
    else:
        first = (
            "Log in at /admin/ with this password. Two-factor login is optional for superusers here "
            "(STAFF_2FA_REQUIRED_FOR_SUPERUSERS is off); set it up at /admin/two-factor/."
        )
    return f"{first}\nLost the phone and the codes: python manage.py two_factor_reset {username}"
