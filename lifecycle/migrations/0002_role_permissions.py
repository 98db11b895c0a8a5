"""The clinic roles' permissions on lifecycle's tables, added to the role groups of medspa/0006.

Frozen here like 0006's matrix (medspa/roles.py holds the same for the code; tests/test_api_permissions.py checks
they agree): every role sees the texts after a booking and the clinic's settings for them; the owner changes the
settings (texting is the owner's, like the clinic's other texting settings).
"""

from django.db import migrations

FRONT_DESK = {"lifecycle.scheduledtext": ["view"], "lifecycle.lifecyclesettings": ["view"]}
OWNER_EXTRA = {"lifecycle.lifecyclesettings": ["add", "change"]}

# role value -> (group name, matrices added to it)
GROUPS = {
    "front_desk": ("Front desk", [FRONT_DESK]),
    "manager": ("Clinic manager", [FRONT_DESK]),
    "owner": ("Clinic owner", [FRONT_DESK, OWNER_EXTRA]),
}


def _permissions(apps, using, matrices):
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    create_permissions(global_apps.get_app_config("lifecycle"), apps=apps, verbosity=0, using=using)
    Permission = apps.get_model("auth", "Permission")
    found = []
    for matrix in matrices:
        for label, actions in matrix.items():
            app_label, model_name = label.split(".")
            for action in actions:
                found.append(
                    Permission.objects.db_manager(using).get(
                        content_type__app_label=app_label, codename=f"{action}_{model_name}"
                    )
                )
    return found


def grant(apps, schema_editor):
    using = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    for name, matrices in GROUPS.values():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.add(*_permissions(apps, using, matrices))


def revoke(apps, schema_editor):
    using = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    for name, matrices in GROUPS.values():
        group = Group.objects.using(using).filter(name=name).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, using, matrices))


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0001_scheduled_texts_and_settings"),
        ("medspa", "0006_role_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
