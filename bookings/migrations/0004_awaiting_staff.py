"""A paid booking on a manual EMR waits for the front desk ("awaiting_staff") and keeps its provider's time, so
the PostgreSQL exclusion constraint now covers that status too."""

from django.db import migrations, models

CREATE = """
ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_no_overlap_per_provider;
ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap_per_provider
    EXCLUDE USING gist (provider_id WITH =, tstzrange(start, "end", '[)') WITH &&)
    WHERE (status IN ('held', 'awaiting_deposit', 'awaiting_staff', 'confirmed'));
"""
PREVIOUS = """
ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_no_overlap_per_provider;
ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap_per_provider
    EXCLUDE USING gist (provider_id WITH =, tstzrange(start, "end", '[)') WITH &&)
    WHERE (status IN ('held', 'awaiting_deposit', 'confirmed'));
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS, params=None)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0003_no_double_booking")]

    operations = [
        migrations.AlterField(
            model_name="booking",
            name="status",
            field=models.CharField(
                choices=[
                    ("held", "Held"),
                    ("awaiting_deposit", "Awaiting deposit"),
                    ("awaiting_staff", "Awaiting staff: enter it in the EMR (manual EMR)"),
                    ("confirmed", "Confirmed"),
                    ("cancelled", "Cancelled"),
                    ("expired", "Expired"),
                    ("failed", "Failed"),
                ],
                default="held",
                max_length=20,
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
