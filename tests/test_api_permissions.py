"""The staff API checks Django model permissions on top of clinic membership; roles are permission groups.

One table gives the expected status of every staff endpoint and method for every kind of caller: a member without
permissions, each role, a superuser, a member of another clinic, nobody. Membership comes first (another clinic is a
404 whatever the caller's permissions), then the model permission of the method (403), then the view (405 for a
method it does not have).
"""

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps as global_apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.db import connection

from knowledge.models import KnowledgeChunk, KnowledgeDocument
from knowledge.services import document_upsert
from medspa.admin import ClinicScopedAdmin
from medspa.models import AuditEvent, ClinicMembership
from medspa.roles import ROLE_GROUPS, ROLE_PERMISSIONS, membership_set, role_groups_sync, role_permission_names
from medspa.tenancy import is_clinic_scoped

from .conftest import make_clinic
from .test_tenant_isolation import _booking, _conversation, _lead

Role = ClinicMembership.Role
MIGRATION = importlib.import_module("medspa.migrations.0006_role_groups")
LATER_MIGRATIONS = [importlib.import_module("lifecycle.migrations.0002_role_permissions")]
# Later migrations that add an app's permissions to the role groups (each with ``ADDED`` and ``add_permissions``).
LATER = [importlib.import_module("waitlist.migrations.0002_role_permissions")]

ENDPOINTS = {
    "leads": "leads",
    "bookings": "bookings",
    "conversations": "conversations",
    "knowledge": "knowledge",
    "knowledge search": "knowledge/search",
}
CALLERS = ["no permissions", "front desk", "manager", "owner", "superuser", "other clinic", "anonymous"]

# fmt: off
TABLE = [
    # endpoint            method     no perms  desk  manager owner super other anon
    ("leads",             "GET",     403,      200,  200,    200,  200,  404,  401),
    ("leads",             "HEAD",    403,      200,  200,    200,  200,  404,  401),
    ("leads",             "OPTIONS", 403,      200,  200,    200,  200,  404,  401),
    ("leads",             "DELETE",  405,      405,  405,    405,  405,  404,  401),
    ("bookings",          "GET",     403,      200,  200,    200,  200,  404,  401),
    ("bookings",          "HEAD",    403,      200,  200,    200,  200,  404,  401),
    ("bookings",          "OPTIONS", 403,      200,  200,    200,  200,  404,  401),
    ("bookings",          "POST",    405,      405,  405,    405,  405,  404,  401),
    ("conversations",     "GET",     403,      200,  200,    200,  200,  404,  401),
    ("conversations",     "HEAD",    403,      200,  200,    200,  200,  404,  401),
    ("conversations",     "OPTIONS", 403,      200,  200,    200,  200,  404,  401),
    ("conversations",     "PATCH",   405,      405,  405,    405,  405,  404,  401),
    ("knowledge",         "GET",     403,      200,  200,    200,  200,  404,  401),
    ("knowledge",         "HEAD",    403,      200,  200,    200,  200,  404,  401),
    ("knowledge",         "OPTIONS", 403,      200,  200,    200,  200,  404,  401),
    ("knowledge",         "POST",    403,      403,  201,    201,  201,  404,  401),
    ("knowledge",         "PUT",     405,      405,  405,    405,  405,  404,  401),
    ("knowledge",         "DELETE",  405,      405,  405,    405,  405,  404,  401),
    ("knowledge search",  "GET",     403,      200,  200,    200,  200,  404,  401),
    ("knowledge search",  "HEAD",    403,      200,  200,    200,  200,  404,  401),
    ("knowledge search",  "OPTIONS", 403,      200,  200,    200,  200,  404,  401),
    ("knowledge search",  "POST",    405,      405,  405,    405,  405,  404,  401),
]
# fmt: on

CASES = [
    (endpoint, method, caller, status)
    for endpoint, method, *statuses in TABLE
    for caller, status in zip(CALLERS, statuses, strict=True)
]


def _user(username, **extra):
    """A staff user without a password (tokens and force_login need none; hashing one costs a second a test)."""
    return User.objects.create_user(username=username, is_staff=True, **extra)


def _member(username, clinic, role, *, all_permissions=False):
    """A membership made directly, as before roles had groups: only the permissions given here."""
    user = _user(username)
    if all_permissions:
        user.user_permissions.set(Permission.objects.all())
    ClinicMembership.objects.create(user=user, clinic=clinic, role=role)
    return user


def _caller(kind, clinic_a, clinic_b):
    """A user of the given kind, seen from clinic A (None: no credentials)."""
    if kind == "anonymous":
        return None
    if kind == "superuser":
        return _user("root", is_superuser=True)
    if kind == "no permissions":
        # What the probe found: a member, token in hand, with no permission at all.
        return _member("bare", clinic_a, Role.FRONT_DESK)
    if kind == "other clinic":
        # Every permission there is, in another clinic: still nothing of clinic A.
        return _member("elsewhere", clinic_b, Role.OWNER, all_permissions=True)
    role = {"front desk": Role.FRONT_DESK, "manager": Role.MANAGER, "owner": Role.OWNER}[kind]
    user = _user(kind.replace(" ", "-"))
    membership_set(user=user, clinic=clinic_a, role=role)
    return user


@pytest.fixture
def world(db):
    clinic_a, clinic_b = make_clinic("clinic-a"), make_clinic("clinic-b")
    rows = {
        "leads": _lead(clinic_a),
        "bookings": _booking(clinic_a),
        "conversations": _conversation(clinic_a),
        "knowledge": document_upsert(clinic=clinic_a, title="Parking", body="Free garage parking.", source="admin")[0],
    }
    for factory in (_lead, _booking, _conversation):
        factory(clinic_b)
    document_upsert(clinic=clinic_b, title="Parking", body="Street parking only.", source="admin")
    return SimpleNamespace(a=clinic_a, b=clinic_b, rows=rows)


def _client(user, api_client, token_client):
    return api_client if user is None else token_client(user)


@pytest.mark.parametrize(
    ("endpoint", "method", "caller", "status"),
    CASES,
    ids=[f"{caller} {method} {endpoint} is {status}" for endpoint, method, caller, status in CASES],
)
def test_each_caller_gets_the_status_the_table_gives_for_each_endpoint_and_method(
    world, api_client, token_client, endpoint, method, caller, status
):
    client = _client(_caller(caller, world.a, world.b), api_client, token_client)
    url = f"/api/clinics/{world.a.slug}/{ENDPOINTS[endpoint]}"
    if endpoint == "knowledge search":
        url += "?q=parking"
    documents_before = KnowledgeDocument.objects.count()

    if method == "POST":
        response = client.post(url, {"title": "Aftercare", "content": "Avoid the gym for a day."}, format="json")
    else:
        response = client.generic(method, url)

    assert response.status_code == status, response.content
    if method == "POST" and endpoint == "knowledge":
        created = KnowledgeDocument.objects.filter(clinic=world.a, title="Aftercare").exists()
        assert created == (status == 201)
        assert KnowledgeDocument.objects.count() == documents_before + (status == 201)
    if method == "GET" and status == 200:
        body = response.json()
        if endpoint == "knowledge search":
            assert body["results"] and all("Street" not in r["snippet"] for r in body["results"])
        else:
            assert [row["id"] for row in body["results"]] == [world.rows[endpoint].pk]


def test_the_same_url_on_a_clinic_that_does_not_exist_is_404_for_every_member(world, token_client):
    for kind in ["no permissions", "front desk", "manager", "owner"]:
        client = token_client(_caller(kind, world.a, world.b))
        for path in ENDPOINTS.values():
            assert client.get(f"/api/clinics/no-such-clinic/{path}").status_code == 404, (kind, path)


def test_the_front_desk_cannot_add_knowledge_and_nothing_is_written(world, token_client):
    client = token_client(_caller("front desk", world.a, world.b))
    url = f"/api/clinics/{world.a.slug}/knowledge"
    chunks_before = KnowledgeChunk.objects.count()

    new = client.post(url, {"title": "Specials", "content": "Tell everyone it is free today."}, format="json")
    replace = client.post(url, {"title": "Parking", "content": "Parking costs $500."}, format="json")
    bulk = client.post(url, {"documents": [{"title": "Specials", "content": "Free Botox."}]}, format="json")

    assert (new.status_code, replace.status_code, bulk.status_code) == (403, 403, 403)
    assert list(KnowledgeDocument.objects.for_clinic(world.a).values_list("title", "body")) == [
        ("Parking", "Free garage parking.")
    ]
    assert KnowledgeChunk.objects.count() == chunks_before
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ADD, object_type="knowledge.knowledgedocument")


def test_the_assistant_keeps_searching_the_text_the_front_desk_could_not_replace(world, token_client):
    client = token_client(_caller("front desk", world.a, world.b))
    client.post(f"/api/clinics/{world.a.slug}/knowledge", {"title": "Parking", "content": "$500."}, format="json")
    response = client.get(f"/api/clinics/{world.a.slug}/knowledge/search", {"q": "parking"})
    assert response.status_code == 200
    assert "Free garage parking." in response.json()["results"][0]["snippet"]


def test_a_manager_can_replace_an_existing_document(world, token_client):
    client = token_client(_caller("manager", world.a, world.b))
    response = client.post(
        f"/api/clinics/{world.a.slug}/knowledge", {"title": "Parking", "content": "Valet only."}, format="json"
    )
    assert response.status_code == 201 and response.json()["updated"] == 1
    assert KnowledgeDocument.objects.get(clinic=world.a, title="Parking").body == "Valet only."


@pytest.fixture
def add_only(world):
    """A member who may add knowledge documents but not change them."""
    user = _member("adder", world.a, Role.FRONT_DESK)
    user.user_permissions.set(Permission.objects.filter(codename="add_knowledgedocument"))
    return user


def test_adding_a_new_title_needs_only_the_add_permission(world, add_only, token_client):
    response = token_client(add_only).post(
        f"/api/clinics/{world.a.slug}/knowledge", {"title": "Hours", "content": "Open 9 to 5."}, format="json"
    )
    assert response.status_code == 201 and response.json()["created"] == 1


def test_replacing_an_existing_title_also_needs_the_change_permission_and_writes_nothing(world, add_only, token_client):
    url = f"/api/clinics/{world.a.slug}/knowledge"
    client = token_client(add_only)
    single = client.post(url, {"title": "Parking", "content": "Parking costs $500."}, format="json")
    bulk = client.post(
        url,
        {"documents": [{"title": "Hours", "content": "Open 9 to 5."}, {"title": "Parking", "content": "$500."}]},
        format="json",
    )
    assert (single.status_code, bulk.status_code) == (403, 403)
    assert "change" in single.json()["detail"]
    # The bulk load is all or nothing: the new document of the refused request is not kept either.
    assert list(KnowledgeDocument.objects.for_clinic(world.a).values_list("title", "body")) == [
        ("Parking", "Free garage parking.")
    ]


def test_resending_an_unchanged_document_needs_no_change_permission(world, add_only, token_client):
    response = token_client(add_only).post(
        f"/api/clinics/{world.a.slug}/knowledge", {"title": "Parking", "content": "Free garage parking."}, format="json"
    )
    assert response.status_code == 200 and response.json()["unchanged"] == 1


def test_the_front_desk_cannot_add_knowledge_in_the_admin_either(world, client):
    client.force_login(_caller("front desk", world.a, world.b))
    assert client.get("/admin/knowledge/knowledgedocument/").status_code == 200
    assert client.get("/admin/knowledge/knowledgedocument/add/").status_code == 403
    document = world.rows["knowledge"]
    response = client.post(
        f"/admin/knowledge/knowledgedocument/{document.pk}/change/",
        {"clinic": world.a.pk, "title": "Parking", "body": "Parking costs $500.", "active": "on"},
    )
    assert response.status_code == 403
    document.refresh_from_db()
    assert document.body == "Free garage parking."


# --- The groups -------------------------------------------------------------------------------------------------


def _group_permissions(name):
    return {
        f"{app_label}.{codename}"
        for app_label, codename in Group.objects.get(name=name).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_the_migration_creates_one_group_per_role_with_the_roles_permissions(db):
    assert set(ROLE_GROUPS) == set(Role)
    for role, name in ROLE_GROUPS.items():
        assert _group_permissions(name) == role_permission_names(role), name


def test_the_migrations_frozen_matrix_is_the_one_the_code_uses(db):
    for role, (name, matrices) in MIGRATION.GROUPS.items():
        assert ROLE_GROUPS[role] == name
        frozen = {}
        later = [matrix for migration in LATER_MIGRATIONS for matrix in migration.GROUPS[role][1]]
        for matrix in [*matrices, *later, *[migration.ADDED[role] for migration in LATER]]:
            for label, actions in matrix.items():
                frozen.setdefault(label, set()).update(actions)
        assert frozen == ROLE_PERMISSIONS[role], role


def test_the_migration_puts_existing_members_in_their_roles_group(db):
    clinic = make_clinic("clinic-a")
    desk = _member("desk", clinic, Role.FRONT_DESK)
    owner = _member("boss", clinic, Role.OWNER)
    Group.objects.filter(name__in=ROLE_GROUPS.values()).delete()

    MIGRATION.create_groups(global_apps, SimpleNamespace(connection=connection))
    for later in LATER_MIGRATIONS:
        later.grant(global_apps, SimpleNamespace(connection=connection))
    for later in LATER:
        later.add_permissions(global_apps, SimpleNamespace(connection=connection))

    assert set(desk.groups.values_list("name", flat=True)) == {"Front desk"}
    assert set(owner.groups.values_list("name", flat=True)) == {"Clinic owner"}
    assert _group_permissions("Front desk") == role_permission_names(Role.FRONT_DESK)
    MIGRATION.delete_groups(global_apps, SimpleNamespace(connection=connection))
    assert not Group.objects.filter(name__in=ROLE_GROUPS.values()).exists()


def test_each_role_includes_the_one_below_it(db):
    desk, manager, owner = (role_permission_names(r) for r in (Role.FRONT_DESK, Role.MANAGER, Role.OWNER))
    assert desk < manager < owner


def test_the_front_desk_reads_knowledge_and_writes_no_knowledge_settings_or_payments(db):
    desk = role_permission_names(Role.FRONT_DESK)
    assert "knowledge.view_knowledgedocument" in desk
    assert not {p for p in desk if p.startswith("knowledge.") and not p.startswith("knowledge.view_")}
    assert not {p for p in desk if p.startswith("payments.")}
    for setting in ["medspa.change_clinic", "emr.change_emrconfig", "messaging.change_clinicmessaging"]:
        assert setting not in desk
    for duty in [
        "conversation.change_conversation",
        "bookings.change_booking",
        "bookings.change_manualbookingrequest",
        "leads.change_lead",
        "messaging.add_optout",
    ]:
        assert duty in desk


def test_managers_write_knowledge_services_and_providers_but_not_the_clinics_settings(db):
    manager = role_permission_names(Role.MANAGER)
    for permission in ["knowledge.add_knowledgedocument", "knowledge.change_knowledgedocument"]:
        assert permission in manager
    assert {"medspa.add_service", "medspa.change_service", "emr.add_provider", "emr.change_provider"} <= manager
    assert not {"medspa.change_clinic", "emr.change_emrconfig", "payments.change_paymentconfig"} & manager


def test_owners_hold_the_clinics_settings_and_payment_and_emr_config(db):
    owner = role_permission_names(Role.OWNER)
    assert {
        "medspa.change_clinic",
        "emr.change_emrconfig",
        "payments.change_paymentconfig",
        "messaging.change_clinicmessaging",
        "medspa.view_clinicmembership",
    } <= owner


def _admin_models():
    """Models of every clinic-scoped admin and of their inlines."""
    models = set()
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, ClinicScopedAdmin):
            models.add(model)
            models.update(inline.model for inline in model_admin.inlines)
    return models


def test_the_owner_can_open_every_clinic_admin_so_every_admin_is_in_the_matrix(db):
    owner = role_permission_names(Role.OWNER)
    missing = [m._meta.label for m in _admin_models() if f"{m._meta.app_label}.view_{m._meta.model_name}" not in owner]
    assert missing == [], "give these models a place in medspa/roles.py (and a migration)"


def test_no_role_touches_platform_tables_or_deletes_patient_data(db):
    patient_data = {"leads.lead", "conversation.conversation", "messaging.message", "messaging.optout"}
    patient_data |= {"bookings.booking", "bookings.manualbookingrequest", "medspa.auditevent"}
    for role in Role:
        for label, actions in ROLE_PERMISSIONS[role].items():
            assert is_clinic_scoped(global_apps.get_model(label)), (role, label)
            assert not (label in patient_data and "delete" in actions), (role, label)
        assert not {label for label in ROLE_PERMISSIONS[role] if label.split(".")[0] in {"auth", "authtoken", "axes"}}


# --- Keeping a user's groups in step with their memberships ------------------------------------------------------


def _groups(user):
    return set(user.groups.values_list("name", flat=True))


def test_setting_a_membership_role_gives_the_roles_group_and_a_new_role_replaces_it(db):
    clinic = make_clinic("clinic-a")
    user = _user("pat")
    membership_set(user=user, clinic=clinic, role=Role.FRONT_DESK)
    assert _groups(user) == {"Front desk"}
    assert not user.has_perm("knowledge.add_knowledgedocument")

    membership_set(user=user, clinic=clinic, role=Role.MANAGER)
    assert _groups(user) == {"Clinic manager"}
    assert user.has_perm("knowledge.add_knowledgedocument")
    assert ClinicMembership.objects.filter(user=user).count() == 1


def test_a_member_of_several_clinics_gets_the_union_of_their_roles_groups(db):
    clinic_a, clinic_b = make_clinic("clinic-a"), make_clinic("clinic-b")
    user = _user("pat")
    membership_set(user=user, clinic=clinic_a, role=Role.FRONT_DESK)
    membership_set(user=user, clinic=clinic_b, role=Role.OWNER)
    assert _groups(user) == {"Front desk", "Clinic owner"}

    ClinicMembership.objects.filter(user=user, clinic=clinic_b).delete()
    role_groups_sync(user)
    assert _groups(user) == {"Front desk"}


def test_syncing_leaves_groups_that_are_not_roles_alone(db):
    clinic = make_clinic("clinic-a")
    user = _user("pat")
    auditors = Group.objects.create(name="Auditors")
    user.groups.add(auditors, Group.objects.get(name="Clinic owner"))
    membership_set(user=user, clinic=clinic, role=Role.FRONT_DESK)
    assert _groups(user) == {"Auditors", "Front desk"}


def test_syncing_without_the_role_groups_refuses_instead_of_granting_nothing_silently(db):
    clinic = make_clinic("clinic-a")
    user = _user("pat")
    Group.objects.filter(name="Front desk").delete()
    with pytest.raises(RuntimeError, match="Front desk"):
        membership_set(user=user, clinic=clinic, role=Role.FRONT_DESK)


def test_the_membership_admin_keeps_groups_in_step_on_add_role_change_move_and_delete(admin_client, db):
    clinic = make_clinic("clinic-a")
    pat = _user("pat")
    sam = _user("sam")
    base = "/admin/medspa/clinicmembership/"

    response = admin_client.post(f"{base}add/", {"clinic": clinic.pk, "user": pat.pk, "role": "front_desk"})
    assert response.status_code == 302, response.content
    membership = ClinicMembership.objects.get(user=pat)
    assert _groups(pat) == {"Front desk"}

    admin_client.post(f"{base}{membership.pk}/change/", {"clinic": clinic.pk, "user": pat.pk, "role": "owner"})
    assert _groups(pat) == {"Clinic owner"}

    admin_client.post(f"{base}{membership.pk}/change/", {"clinic": clinic.pk, "user": sam.pk, "role": "owner"})
    assert (_groups(pat), _groups(sam)) == (set(), {"Clinic owner"})

    admin_client.post(f"{base}{membership.pk}/delete/", {"post": "yes"})
    assert not ClinicMembership.objects.exists() and _groups(sam) == set()


def test_deleting_memberships_in_bulk_from_the_admin_removes_their_groups(admin_client, db):
    clinic = make_clinic("clinic-a")
    pat = _user("pat")
    membership = membership_set(user=pat, clinic=clinic, role=Role.MANAGER)
    admin_client.post(
        "/admin/medspa/clinicmembership/",
        {"action": "delete_selected", "_selected_action": [membership.pk], "post": "yes"},
    )
    assert not ClinicMembership.objects.exists() and _groups(pat) == set()


def _change_form_data(response):
    """The POST a browser would send for an admin change page as it is rendered (the form and every inline)."""
    data = {}

    def add(form):
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            if value is True:
                value = "on"
            data[form.add_prefix(name)] = [str(v) for v in value] if isinstance(value, list | tuple) else str(value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update({f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()})
        for form in formset.initial_forms:
            add(form)
    return data


def test_the_clinic_admins_staff_inline_keeps_groups_in_step(admin_client, db):
    clinic = make_clinic("clinic-a")
    pat = _user("pat")
    url = f"/admin/medspa/clinic/{clinic.pk}/change/"

    data = _change_form_data(admin_client.get(url))
    prefix = next(k[: -len("-TOTAL_FORMS")] for k in data if k.endswith("-TOTAL_FORMS") and "membership" in k)
    data.update({f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-0-user": pat.pk, f"{prefix}-0-role": "manager"})
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert _groups(pat) == {"Clinic manager"}

    data = _change_form_data(admin_client.get(url))
    membership = ClinicMembership.objects.get(user=pat)
    row = next(k[: -len("-id")] for k, v in data.items() if k.startswith(prefix) and k.endswith("-id"))
    assert data[f"{row}-id"] == str(membership.pk)
    data[f"{row}-role"] = "front_desk"
    assert admin_client.post(url, data).status_code == 302
    assert _groups(pat) == {"Front desk"}

    data = _change_form_data(admin_client.get(url))
    data[f"{row}-DELETE"] = "on"
    assert admin_client.post(url, data).status_code == 302
    assert not ClinicMembership.objects.exists() and _groups(pat) == set()
