"""On PostgreSQL the database itself refuses UPDATE and DELETE on the audit log (TRUNCATE, used by test
teardown and by an operator purging per retention policy, is a deliberate, separate privilege)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION medspa_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'medspa_auditevent is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER medspa_auditevent_append_only
    BEFORE UPDATE OR DELETE ON medspa_auditevent
    FOR EACH ROW EXECUTE FUNCTION medspa_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS medspa_auditevent_append_only ON medspa_auditevent;
DROP FUNCTION IF EXISTS medspa_auditevent_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("medspa", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
