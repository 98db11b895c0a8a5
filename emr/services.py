"""Scheduling rules owned by emr/: the clinic file's providers and hours, and the client for a clinic."""

import json
from datetime import time

from medspa.models import Service

from .calendar import BuiltinCalendarClient
from .models import EmrConfig, Provider, WorkingHours

WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def providers_load(*, clinic, entries: list, report) -> None:
    """The ``providers`` section of a clinic file: ``[{"name", "title", "services": [names], "hours": {"mon":
    ["09:00", "17:00"], ...}}]``. Upserts by name; a provider's hours are replaced by the file's."""
    EmrConfig.objects.get_or_create(clinic=clinic)
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ValueError(f"providers[{index}]: expected an object with a name")
        provider, created = Provider.objects.get_or_create(clinic=clinic, name=entry["name"])
        changed = created
        if provider.title != entry.get("title", ""):
            provider.title, changed = entry.get("title", ""), True
            provider.save()
        names = entry.get("services", [])
        services = list(Service.objects.for_clinic(clinic).filter(name__in=names))
        if len(services) != len(set(names)):
            missing = set(names) - {s.name for s in services}
            raise ValueError(f"providers[{index}]: unknown services {sorted(missing)}")
        if set(provider.services.all()) != set(services):
            provider.services.set(services)
            changed = True
        wanted = set()
        for day, (opens, closes) in entry.get("hours", {}).items():
            if day not in WEEKDAYS:
                raise ValueError(f"providers[{index}].hours: {day!r} is not one of {', '.join(WEEKDAYS)}")
            wanted.add((WEEKDAYS[day], time.fromisoformat(opens), time.fromisoformat(closes)))
        current = set(WorkingHours.objects.filter(provider=provider).values_list("weekday", "start", "end"))
        if current != wanted:
            WorkingHours.objects.filter(provider=provider).delete()
            WorkingHours.objects.bulk_create(
                WorkingHours(clinic=clinic, provider=provider, weekday=d, start=s, end=e) for d, s, e in sorted(wanted)
            )
            changed = True
        report.count("providers", "created" if created else "updated" if changed else "unchanged")


class EmrConfigError(ValueError):
    """The clinic's EMR configuration cannot make a client; the message says what to fix."""


def emr_client(*, clinic):
    """The scheduling client for a clinic, from its EMR configuration (the built-in calendar by default).

    Credentials are a JSON object in the encrypted ``credentials`` field: Nextech ``{client_id, username,
    password, practice_id}``, Boulevard ``{business_id, api_key, sandbox}``; the location comes from
    ``location_ref``. The manual integration's staff queue is not built yet (docs/DECISIONS.md)."""
    config = EmrConfig.objects.filter(clinic=clinic).first()
    if config is None or config.kind == EmrConfig.Kind.BUILTIN:
        return BuiltinCalendarClient(clinic=clinic, config=config)
    try:
        credentials = json.loads(config.credentials or "{}")
    except ValueError:
        raise EmrConfigError("EMR credentials are not valid JSON.") from None
    try:
        if config.kind == EmrConfig.Kind.NEXTECH:
            from .nextech import NextechClient

            return NextechClient(location_id=config.location_ref, **credentials)
        if config.kind == EmrConfig.Kind.BOULEVARD:
            from .boulevard import BoulevardClient

            return BoulevardClient(location_id=config.location_ref, **credentials)
    except TypeError as exc:
        raise EmrConfigError(f"EMR credentials do not fit {config.get_kind_display()}: {exc}") from None
    raise EmrConfigError(f"{config.get_kind_display()} has no client yet.")
