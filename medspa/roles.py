"""Clinic roles as Django permission groups: what an owner, a manager and the front desk may do.

Membership (``ClinicMembership``) decides *which* clinics a user sees; the role's group decides *what* they may do
there, in the admin and in the staff API alike (medspa/api.py checks the same model permissions). Each role is one
group, created with its permissions by migration ``medspa/0006_role_groups`` (and added to by later apps'
migrations: ``waitlist/0002_role_permissions``); ``ROLE_PERMISSIONS`` below is the matrix those migrations froze,
and tests/test_api_permissions.py checks that the two agree. Changing the matrix means a new migration that
updates the groups.

``role_groups_sync(user)`` gives a user exactly the role groups of their memberships (the union when they belong to
several clinics) and leaves any other group alone. Call it whenever a membership is created, changed or deleted:
the membership admin and the clinic admin's staff inline do; code should use ``membership_set``.
"""

from django.contrib.auth.models import Group

from .models import ClinicMembership

Role = ClinicMembership.Role

ROLE_GROUPS = {
    Role.OWNER: "Clinic owner",
    Role.MANAGER: "Clinic manager",
    Role.FRONT_DESK: "Front desk",
}

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"

# The front desk answers patients and runs the day: conversations (take over, reply, hand back), bookings (cancel,
# the manual-EMR queue), leads, opt-outs a patient asked for by phone, staff alerts. It reads the clinic's profile,
# catalog, providers and knowledge, and changes none of them: what the assistant tells patients is not theirs to
# rewrite. No payments at all: the payment admin's refund action is open to whoever can view payments.
_FRONT_DESK = {
    "medspa.clinic": {VIEW},
    "medspa.service": {VIEW},
    "medspa.staffalert": {VIEW, CHANGE},
    "leads.lead": {VIEW, CHANGE},
    "conversation.conversation": {VIEW, CHANGE},
    "messaging.message": {VIEW},
    "messaging.optout": {VIEW, ADD},
    "knowledge.knowledgedocument": {VIEW},
    "emr.provider": {VIEW},
    "emr.workinghours": {VIEW},
    "emr.timeoff": {VIEW},
    "bookings.booking": {VIEW, CHANGE},
    "bookings.manualbookingrequest": {VIEW, CHANGE},
    # lifecycle/0002_role_permissions: a booking's texts and the settings behind them
    "lifecycle.scheduledtext": {VIEW},
    "lifecycle.lifecyclesettings": {VIEW},
    # The waitlist (added by migration waitlist/0002): who waits, the offers each got; take a patient off it.
    "waitlist.waitlistentry": {VIEW, CHANGE},
    "waitlist.waitlistoffer": {VIEW},
    "waitlist.waitlistsettings": {VIEW},
}

# The manager keeps what the assistant knows and sells: knowledge documents, the service catalog, providers and
# their hours; and sees what the assistant did (turns). Services and providers are deactivated, not deleted
# (bookings protect them).
_MANAGER_EXTRA = {
    "knowledge.knowledgedocument": {ADD, CHANGE, DELETE},
    "medspa.service": {ADD, CHANGE},
    "emr.provider": {ADD, CHANGE},
    "emr.workinghours": {ADD, CHANGE, DELETE},
    "emr.timeoff": {ADD, CHANGE, DELETE},
    "conversation.turn": {VIEW},
}

# The owner runs the business: the clinic's settings (texting, policies), messaging registration and numbers, the
# EMR connection, payments (config, refunds, the outbox), provider events (reprocess), the audit log, and sees who
# is on staff. Memberships themselves, clinics, users and deletes of patient data stay with platform operators
# (the admin allows clinic staff no more).
_OWNER_EXTRA = {
    "medspa.clinic": {CHANGE},
    "medspa.clinicmembership": {VIEW},
    "medspa.auditevent": {VIEW},
    "messaging.clinicmessaging": {VIEW, ADD, CHANGE},
    "messaging.phonenumber": {VIEW, CHANGE},
    "emr.emrconfig": {VIEW, ADD, CHANGE},
    "payments.paymentconfig": {VIEW, ADD, CHANGE},
    "payments.payment": {VIEW, CHANGE},
    "payments.outboxitem": {VIEW, CHANGE},
    "inbox.webhookevent": {VIEW, CHANGE},
    "lifecycle.lifecyclesettings": {ADD, CHANGE},  # lifecycle/0002_role_permissions
    "waitlist.waitlistsettings": {ADD, CHANGE},
}


def _union(*matrices):
    merged = {}
    for matrix in matrices:
        for model, actions in matrix.items():
            merged.setdefault(model, set()).update(actions)
    return merged


# role -> {"app_label.model_name": {actions}}
ROLE_PERMISSIONS = {
    Role.FRONT_DESK: _union(_FRONT_DESK),
    Role.MANAGER: _union(_FRONT_DESK, _MANAGER_EXTRA),
    Role.OWNER: _union(_FRONT_DESK, _MANAGER_EXTRA, _OWNER_EXTRA),
}


def role_permission_names(role) -> set[str]:
    """The role's permissions as ``user.has_perm`` spells them: ``{"knowledge.view_knowledgedocument", ...}``."""
    names = set()
    for label, actions in ROLE_PERMISSIONS[role].items():
        app_label, model_name = label.split(".")
        names.update(f"{app_label}.{action}_{model_name}" for action in actions)
    return names


def role_groups_sync(user) -> None:
    """Give ``user`` the groups of the roles they hold in their clinics (the union), and none of the other roles'
    groups; groups that are not role groups are left as they are. Raises if a role group is missing (the groups
    come from migration medspa/0006): a membership without its permissions should not be saved."""
    roles = set(ClinicMembership.objects.filter(user=user).values_list("role", flat=True))
    groups = {group.name: group for group in Group.objects.filter(name__in=ROLE_GROUPS.values())}
    missing = set(ROLE_GROUPS.values()) - set(groups)
    if missing:
        raise RuntimeError(f"Role groups missing: {', '.join(sorted(missing))}; run the migrations (medspa 0006).")
    wanted = {ROLE_GROUPS[role] for role in roles if role in ROLE_GROUPS}
    user.groups.remove(*[group for name, group in groups.items() if name not in wanted])
    user.groups.add(*[group for name, group in groups.items() if name in wanted])
    # Django caches a user's permissions on the instance; this one must see its new groups.
    for cache in ("_perm_cache", "_group_perm_cache", "_user_perm_cache"):
        user.__dict__.pop(cache, None)


def membership_set(*, user, clinic, role) -> ClinicMembership:
    """Create or update ``user``'s membership of ``clinic`` with ``role``, and sync their groups."""
    membership, _ = ClinicMembership.objects.update_or_create(user=user, clinic=clinic, defaults={"role": role})
    role_groups_sync(user)
    return membership
