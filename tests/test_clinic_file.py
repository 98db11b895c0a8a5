"""seed_knowledge: the demo clinic loads, a second run changes nothing, a changed file updates in place."""

import json

import pytest
from django.core.management import CommandError, call_command

from medspa.clinic_file import DEMO_CLINIC_FILE, clinic_file_load, clinic_file_read
from medspa.models import Clinic, Service


def snapshot():
    rows = list(Clinic.objects.values()) + list(Service.objects.order_by("pk").values())
    return json.dumps(rows, default=str, sort_keys=True)


@pytest.mark.django_db
def test_demo_clinic_matches_the_design(capsys):
    call_command("seed_knowledge", verbosity=0)
    clinic = Clinic.objects.get(slug="demo-clinic-001")
    assert clinic.timezone == "America/New_York" and clinic.active and clinic.ai_enabled
    assert "24 hours" in clinic.cancellation_policy and clinic.cancellation_notice_hours == 24
    botox = Service.objects.get(clinic=clinic, name="Botox")
    assert botox.price_text() == "$12 per unit (most treatments use 20-30 units, about $240-$360)"
    assert botox.deposit_for(new_client=True) == 5000 and botox.deposit_for(new_client=False) == 0
    filler = Service.objects.get(clinic=clinic, name="Dermal Filler")
    assert filler.price_text() == "$650-$850 per syringe"
    assert Service.objects.filter(clinic=clinic, active=True).count() >= 8


@pytest.mark.django_db
def test_second_run_changes_nothing(capsys):
    call_command("seed_knowledge", verbosity=0)
    before = snapshot()
    call_command("seed_knowledge", verbosity=0)
    assert snapshot() == before  # not even updated_at
    assert "already up to date" in capsys.readouterr().out


def test_the_demo_fixture_holds_what_the_file_loads(demo, capsys):
    """tests/conftest.py's ``demo`` copies the rows of one load per session: loading the file again changes nothing,
    and re-indexing its documents gives the very chunks the copy has."""
    from knowledge.models import KnowledgeChunk, KnowledgeDocument
    from knowledge.services import document_index

    def chunks():
        rows = KnowledgeChunk.objects.order_by("document__title", "position")
        return list(rows.values_list("title", "text", "terms"))

    before, indexed = snapshot(), chunks()
    call_command("seed_knowledge", verbosity=0)
    assert snapshot() == before
    assert "already up to date" in capsys.readouterr().out
    for document in KnowledgeDocument.objects.filter(clinic=demo):
        document_index(document)
    assert chunks() == indexed and len(indexed) >= KnowledgeDocument.objects.filter(clinic=demo).count()


@pytest.mark.django_db
def test_changed_file_updates_in_place(tmp_path, capsys):
    call_command("seed_knowledge", verbosity=0)
    ids = dict(Service.objects.values_list("name", "pk"))
    data = clinic_file_read(DEMO_CLINIC_FILE)
    data["clinic"]["name"] = "Glow Renamed"
    next(s for s in data["services"] if s["name"] == "Botox")["price_cents"] = 1300
    data["services"] = [s for s in data["services"] if s["name"] != "Kybella"]
    changed = tmp_path / "clinic.json"
    changed.write_text(json.dumps(data))

    call_command("seed_knowledge", str(changed), verbosity=0)
    assert "services: 1 updated" in capsys.readouterr().out
    assert Clinic.objects.get().name == "Glow Renamed"
    assert Service.objects.get(name="Botox").price_cents == 1300
    assert dict(Service.objects.values_list("name", "pk")) == ids  # same rows, updated in place
    assert Service.objects.get(name="Kybella").active  # kept without --replace

    call_command("seed_knowledge", str(changed), "--replace", verbosity=0)
    assert not Service.objects.get(name="Kybella").active


@pytest.mark.django_db
def test_load_under_another_slug():
    call_command("seed_knowledge", "--clinic", "copy-clinic", verbosity=0)
    assert Clinic.objects.get(slug="copy-clinic").services.count() == len(
        clinic_file_read(DEMO_CLINIC_FILE)["services"]
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"services": []}', "'clinic' object"),
        ('{"clinic": {"slug": "x", "name": "X", "colour": "red"}}', "unknown field(s) colour"),
        ('{"clinic": {"slug": "x", "name": "X"}, "services": [{"name": "A", "price_type": "fixed"}]}', "services[0]"),
        ('{"clinic": {"slug": "x", "name": "X", "timezone": "Nowhere/Land"}}', "timezone"),
    ],
)
def test_bad_files_fail_clearly_and_load_nothing(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        call_command("seed_knowledge", str(path), verbosity=0)
    assert not Clinic.objects.exists()


def test_missing_file(db):
    with pytest.raises(CommandError, match="no such file"):
        call_command("seed_knowledge", "/nonexistent.json", verbosity=0)


@pytest.mark.django_db
def test_progress_is_reported_per_item():
    from medspa.clinic_file import clinic_file_size

    ticks, data = [], clinic_file_read(DEMO_CLINIC_FILE)
    clinic_file_load(data, progress=ticks.append)
    assert sum(ticks) == clinic_file_size(data) == 1 + Service.objects.count() + len(data["documents"])


@pytest.mark.django_db
def test_ensure_admin_creates_once_and_prints_a_generated_password(capsys, monkeypatch):
    from django.contrib.auth import authenticate, get_user_model

    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    call_command("ensure_admin")
    out = capsys.readouterr().out
    password = out.split("not stored anywhere): ")[1].split()[0]
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.check_password(password)
    call_command("ensure_admin")
    assert "A superuser exists" in capsys.readouterr().out
    assert get_user_model().objects.count() == 1
    assert authenticate is not None
