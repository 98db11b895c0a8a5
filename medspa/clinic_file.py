"""Loading a clinic file (fixtures/demo-clinic.json is one): its profile and service catalog, idempotently.

Running the same file twice changes nothing (a row is saved only when a value differs); a changed file updates
rows in place, matched by clinic slug and service name. The other sections (phone numbers, knowledge documents,
providers and their hours) are loaded by the apps that own them: each registers its section's loader with
``clinic_file_section`` in its ``AppConfig.ready()``, and this module only dispatches, in the sections' order.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction

from .models import Clinic, Service

DEMO_CLINIC_FILE = settings.BASE_DIR / "fixtures" / "demo-clinic.json"

CLINIC_FIELDS = {f.name for f in Clinic._meta.concrete_fields} - {"id", "created_at", "updated_at"}
SERVICE_FIELDS = {f.name for f in Service._meta.concrete_fields} - {"id", "clinic", "created_at", "updated_at"}


class ClinicFileError(ValueError):
    """The file cannot be loaded; the message says where."""


@dataclass(frozen=True)
class Section:
    """A section of the clinic file that another app owns. ``load(clinic=, entries=, replace=, report=)`` raises
    ValueError or ValidationError with a message that says where; ``progress``: its entries count towards the
    progress bar (one tick each); ``always``: loaded (with no entries) even when the file has no such section."""

    key: str
    load: Callable
    order: int
    progress: bool = False
    always: bool = False


SECTIONS: dict[str, Section] = {}


def clinic_file_section(key: str, load: Callable, *, order: int, progress: bool = False, always=False) -> None:
    """Register the loader of the ``key`` section (an app's ``ready()``); sections load in ``order``."""
    SECTIONS[key] = Section(key, load, order, progress, always)


@dataclass
class LoadReport:
    clinic: Clinic | None = None
    counts: dict = field(default_factory=dict)

    def count(self, kind, outcome):
        self.counts.setdefault(kind, {"created": 0, "updated": 0, "unchanged": 0, "deactivated": 0})
        self.counts[kind][outcome] += 1

    @property
    def changed(self):
        return any(c["created"] or c["updated"] or c["deactivated"] for c in self.counts.values())

    def summary(self):
        return "; ".join(
            f"{kind}: " + ", ".join(f"{n} {outcome}" for outcome, n in c.items() if n) if any(c.values()) else kind
            for kind, c in self.counts.items()
        )


def clinic_file_read(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClinicFileError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ClinicFileError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and "clinic" not in data and isinstance(data.get("clinic_id"), str):
        return data  # the original plan's knowledge seed format: {"clinic_id": SLUG, "documents": [...]}
    if not isinstance(data, dict) or not isinstance(data.get("clinic"), dict):
        raise ClinicFileError(f"{path}: expected an object with a 'clinic' object (or 'clinic_id' and 'documents')")
    return data


def _coerce(model, name, value):
    if isinstance(model._meta.get_field(name), models.TimeField) and isinstance(value, str):
        return time.fromisoformat(value)
    return value


def _upsert(model, lookup, values, *, where):
    """Create or update one row from ``values``; save only when something differs. Returns (obj, outcome)."""
    unknown = set(values) - (CLINIC_FIELDS if model is Clinic else SERVICE_FIELDS)
    if unknown:
        raise ClinicFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    obj = model._default_manager.filter(**lookup).first()
    outcome = "unchanged"
    if obj is None:
        obj, outcome = model(**lookup), "created"
    for name, value in values.items():
        value = _coerce(model, name, value)
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            outcome = "updated" if outcome != "created" else outcome
    if outcome != "unchanged":
        try:
            obj.full_clean()
        except ValidationError as exc:
            raise ClinicFileError(f"{where}: {exc.message_dict}") from None
        obj.save()
    return obj, outcome


@transaction.atomic
def clinic_file_load(data: dict, *, slug: str | None = None, replace: bool = False, progress=None) -> LoadReport:
    """Load the clinic profile and services of ``data``. ``slug`` overrides the file's (load a copy under
    another slug). ``replace`` deactivates the clinic's services that the file no longer lists.
    ``progress`` (e.g. a tqdm bar's ``update``) is called once per item loaded."""
    report = LoadReport()
    if "clinic" not in data:  # {"clinic_id": SLUG, "documents": [...]}: documents for an existing clinic
        report.clinic = Clinic.objects.filter(slug=slug or data["clinic_id"]).first()
        if report.clinic is None:
            raise ClinicFileError(
                f"clinic_id: no clinic with slug {slug or data['clinic_id']!r}; load its clinic file first"
            )
        _load_sections(report.clinic, data, replace=replace, report=report, progress=progress)
        return report
    profile = dict(data["clinic"])
    slug = slug or profile.pop("slug", None)
    profile.pop("slug", None)
    if not slug:
        raise ClinicFileError("clinic.slug is missing (or pass --clinic)")
    clinic, outcome = _upsert(Clinic, {"slug": slug}, profile, where="clinic")
    report.clinic = clinic
    report.count("clinic", outcome)
    _tick(progress)

    services = data.get("services", [])
    if not isinstance(services, list):
        raise ClinicFileError("services: expected a list")
    names = set()
    for index, entry in enumerate(services):
        where = f"services[{index}]"
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ClinicFileError(f"{where}: expected an object with a name")
        values = {"active": True, **entry}
        name = values.pop("name")
        if name in names:
            raise ClinicFileError(f"{where}: service {name!r} is listed twice")
        names.add(name)
        _, outcome = _upsert(Service, {"clinic": clinic, "name": name}, values, where=where)
        report.count("services", outcome)
        _tick(progress)

    _load_sections(clinic, data, replace=replace, report=report, progress=progress)

    if replace:
        for service in Service.objects.for_clinic(clinic).filter(active=True).exclude(name__in=names):
            service.active = False
            service.save(update_fields=["active", "updated_at"])
            report.count("services", "deactivated")
    return report


def _load_sections(clinic, data, *, replace, report, progress):
    for section in sorted(SECTIONS.values(), key=lambda s: s.order):
        if section.key not in data and not section.always:
            continue
        entries = data.get(section.key, [])
        if not isinstance(entries, list):
            raise ClinicFileError(f"{section.key}: expected a list")
        try:
            section.load(clinic=clinic, entries=entries, replace=replace, report=report)
        except (ValueError, ValidationError) as exc:
            raise ClinicFileError(str(exc)) from None
        if section.progress and progress is not None:
            progress(len(entries))


def clinic_file_size(data: dict) -> int:
    """How many items ``clinic_file_load`` will report progress for (phone numbers are few and not counted)."""
    return (1 if "clinic" in data else 0) + len(data.get("services", [])) + len(data.get("documents", []))


def _tick(progress):
    if progress is not None:
        progress(1)
