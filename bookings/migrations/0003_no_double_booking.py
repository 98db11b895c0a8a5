"""On PostgreSQL, the database itself refuses two active bookings of one provider whose times overlap
(half-open ranges: 2:00-3:00 and 3:00-4:00 do not overlap). Needs the btree_gist extension (created here; on a
managed database without superuser rights, create it once by hand)."""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap_per_provider
    EXCLUDE USING gist (provider_id WITH =, tstzrange(start, "end", '[)') WITH &&)
    WHERE (status IN ('held', 'awaiting_deposit', 'confirmed'));
"""
DROP = "ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_no_overlap_per_provider;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0002_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
