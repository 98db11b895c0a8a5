"""The three clinic roles as permission groups, and every existing member put in their role's group.

The matrix is frozen here (migrations must not import code that changes later); medspa/roles.py holds the same
matrix for the code and tests/test_api_permissions.py checks that they agree. A change to it is a new migration.
"""

from django.db import migrations

FRONT_DESK = {
    "medspa.clinic": ["view"],
    "medspa.service": ["view"],
    "medspa.staffalert": ["view", "change"],
    "leads.lead": ["view", "change"],
    "conversation.conversation": ["view", "change"],
    "messaging.message": ["view"],
    "messaging.optout": ["view", "add"],
    "knowledge.knowledgedocument": ["view"],
    "emr.provider": ["view"],
    "emr.workinghours": ["view"],
    "emr.timeoff": ["view"],
    "bookings.booking": ["view", "change"],
    "bookings.manualbookingrequest": ["view", "change"],
}
MANAGER_EXTRA = {
    "knowledge.knowledgedocument": ["add", "change", "delete"],
    "medspa.service": ["add", "change"],
    "emr.provider": ["add", "change"],
    "emr.workinghours": ["add", "change", "delete"],
    "emr.timeoff": ["add", "change", "delete"],
    "conversation.turn": ["view"],
}
OWNER_EXTRA = {
    "medspa.clinic": ["change"],
    "medspa.clinicmembership": ["view"],
    "medspa.auditevent": ["view"],
    "messaging.clinicmessaging": ["view", "add", "change"],
    "messaging.phonenumber": ["view", "change"],
    "emr.emrconfig": ["view", "add", "change"],
    "payments.paymentconfig": ["view", "add", "change"],
    "payments.payment": ["view", "change"],
    "payments.outboxitem": ["view", "change"],
    "inbox.webhookevent": ["view", "change"],
}

# role value -> (group name, matrices it is the union of)
GROUPS = {
    "front_desk": ("Front desk", [FRONT_DESK]),
    "manager": ("Clinic manager", [FRONT_DESK, MANAGER_EXTRA]),
    "owner": ("Clinic owner", [FRONT_DESK, MANAGER_EXTRA, OWNER_EXTRA]),
}


def _ensure_permissions(apps, using):
    """Permissions are normally made after the whole migrate run (post_migrate); on a new database they do not
    exist yet at this point, so make them now for every model in this migration's state."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, apps=apps, verbosity=0, using=using)


def create_groups(apps, schema_editor):
    using = schema_editor.connection.alias
    _ensure_permissions(apps, using)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    ClinicMembership = apps.get_model("medspa", "ClinicMembership")

    groups = {}
    for role, (name, matrices) in GROUPS.items():
        permissions = []
        for matrix in matrices:
            for label, actions in matrix.items():
                app_label, model_name = label.split(".")
                content_type = ContentType.objects.db_manager(using).get(app_label=app_label, model=model_name)
                for action in actions:
                    permissions.append(
                        Permission.objects.db_manager(using).get(
                            content_type=content_type, codename=f"{action}_{model_name}"
                        )
                    )
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.set(permissions)
        groups[role] = group

    for membership in ClinicMembership.objects.using(using).select_related("user"):
        if membership.role in groups:
            membership.user.groups.add(groups[membership.role])


def delete_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=[name for name, _ in GROUPS.values()]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("medspa", "0005_staffalert_webhook_kind"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        # Every model the groups name must exist in this migration's state.
        ("bookings", "0006_reschedule"),
        ("conversation", "0003_reschedule"),
        ("emr", "0001_initial"),
        ("inbox", "0002_copy_earlier_events"),
        ("knowledge", "0001_initial"),
        ("leads", "0001_initial"),
        ("messaging", "0007_phonenumber_default_sender"),
        ("payments", "0002_partial_refunds_events_moved_to_inbox"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
