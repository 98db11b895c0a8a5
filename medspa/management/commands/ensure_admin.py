import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Make sure a superuser exists so the admin can be opened. Uses DJANGO_SUPERUSER_USERNAME (default 'admin') "
        "and DJANGO_SUPERUSER_PASSWORD; without the latter, generates a password and prints it once."
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
