"""The waitlist's permissions for the clinic roles (medspa/roles.py; the groups come from medspa 0006).

Frozen here like 0006's matrix; tests/test_api_permissions.py checks that 0006 plus this equals the code's matrix.
"""

from django.db import migrations

# role value -> {"app_label.model": [actions]} added to that role's group
ADDED = {
    "front_desk": {
        "waitlist.waitlistentry": ["view", "change"],
        "waitlist.waitlistoffer": ["view"],
        "waitlist.waitlistsettings": ["view"],
    },
    "manager": {
        "waitlist.waitlistentry": ["view", "change"],
        "waitlist.waitlistoffer": ["view"],
        "waitlist.waitlistsettings": ["view"],
    },
    "owner": {
        "waitlist.waitlistentry": ["view", "change"],
        "waitlist.waitlistoffer": ["view"],
        "waitlist.waitlistsettings": ["view", "add", "change"],
    },
}
GROUP_NAMES = {"front_desk": "Front desk", "manager": "Clinic manager", "owner": "Clinic owner"}


def _permissions(apps, using, matrix):
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    for app_config in global_apps.get_app_configs():  # on a new database they are made after the whole run
        create_permissions(app_config, apps=apps, verbosity=0, using=using)
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    found = []
    for label, actions in matrix.items():
        app_label, model_name = label.split(".")
        content_type = ContentType.objects.db_manager(using).get(app_label=app_label, model=model_name)
        found += [
            Permission.objects.db_manager(using).get(content_type=content_type, codename=f"{action}_{model_name}")
            for action in actions
        ]
    return found


def add_permissions(apps, schema_editor):
    using = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    for role, matrix in ADDED.items():
        group, _ = Group.objects.using(using).get_or_create(name=GROUP_NAMES[role])
        group.permissions.add(*_permissions(apps, using, matrix))


def remove_permissions(apps, schema_editor):
    using = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    for role, matrix in ADDED.items():
        group = Group.objects.using(using).filter(name=GROUP_NAMES[role]).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, using, matrix))


class Migration(migrations.Migration):
    dependencies = [
        ("waitlist", "0001_initial"),
        ("medspa", "0006_role_groups"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(add_permissions, remove_permissions)]
