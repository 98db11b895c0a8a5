"""Scheduling rules owned by emr/: the clinic file's providers and hours, and the client for a clinic.

``EMR_CLIENTS`` maps each ``EmrConfig.Kind`` to its client class, built by ``from_config(clinic, config)``;
``settings.EMR_CLIENTS`` (kind -> dotted path) adds a kind or replaces one's client.
"""

from datetime import time

from django.conf import settings
from django.utils.module_loading import import_string

from medspa.models import Service

from .base import EmrConfigError, EmrError
from .models import EmrConfig, Provider, WorkingHours

EMR_CLIENTS = {
    EmrConfig.Kind.BUILTIN: "emr.calendar.BuiltinCalendarClient",
    EmrConfig.Kind.NEXTECH: "emr.nextech.NextechClient",  # credentials {client_id, username, password, practice_id}
    # credentials {business_id, api_key, api_secret, sandbox, card_via_boulevard?, test_client_id?}
    EmrConfig.Kind.BOULEVARD: "emr.boulevard.BoulevardClient",
    # credentials {access_token, environment} or none: the deposit settings' Square account (emr.square_credentials)
    EmrConfig.Kind.SQUARE: "emr.square_appointments.SquareAppointmentsClient",
    EmrConfig.Kind.ZENOTI: "emr.zenoti.ZenotiClient",  # credentials {api_key}; location_ref is the center id
    EmrConfig.Kind.MANUAL: "emr.manual.ManualEmrClient",  # reads the built-in calendar, staff write (Aesthetic Record)
}

WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def providers_load(*, clinic, entries: list, report, replace: bool = False) -> None:
    """The ``providers`` section of a clinic file: ``[{"name", "title", "services": [names], "hours": {"mon":
    ["09:00", "17:00"], ...}}]``. Upserts by name; a provider's hours are replaced by the file's (``replace``
    deactivates no provider)."""
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


def emr_client(*, clinic):
    """The scheduling client for a clinic: ``EMR_CLIENTS[kind].from_config(clinic, config)`` for the kind of its
    EMR configuration (the built-in calendar when it has none). ``EmrConfigError`` when no client fits."""
    return emr_client_for(clinic=clinic, config=EmrConfig.objects.filter(clinic=clinic).first())


def emr_client_for(*, clinic, config):
    """The client a configuration makes (saved or not: the admin checks a form's with it)."""
    path = {**EMR_CLIENTS, **settings.EMR_CLIENTS}.get(config.kind if config else EmrConfig.Kind.BUILTIN)
    if path is None:
        raise EmrConfigError(f"{config.get_kind_display()} has no client yet.")
    return import_string(path).from_config(clinic, config)


def emr_connection_test(*, clinic, now=None) -> tuple[bool, str]:
    """The admin's "test connection": build the clinic's client and ask it for a service's open times over the
    next three days, through the same calls a patient's question makes. Returns (ok, what to tell staff)."""
    from datetime import timedelta

    from django.utils import timezone

    try:
        client = emr_client(clinic=clinic)
    except EmrConfigError as exc:
        return False, str(exc)
    services = Service.objects.for_clinic(clinic).filter(active=True).order_by("name")
    service = next((s for s in services if client.service_ref(s)), None)
    if service is None:
        return False, "No active service is mapped to an EMR appointment type (the service's EMR service id)."
    start = now or timezone.now()
    end = start + timedelta(days=3)
    try:
        slots = client.availability(service_ref=client.service_ref(service), start=start, end=end)
        providers = Provider.objects.for_clinic(clinic).filter(active=True, services=service).order_by("name")
        refs = [ref for ref in (client.provider_ref(p) for p in providers) if ref]
        checks = client.connection_checks(
            service_ref=client.service_ref(service), provider_refs=refs, start=start, end=end
        )
    except EmrError as exc:
        return False, f"The EMR answered with an error: {exc}"
    except Exception as exc:  # a network or configuration problem: staff need its kind, not a traceback
        return False, f"Could not reach the EMR: {type(exc).__name__}"
    text = f"Connected: {len(slots)} open time(s) for {service.name} in the next 3 days."
    if checks:
        text += " " + " ".join(f"{step}: {'ok' if ok else 'PROBLEM'}, {what}." for step, ok, what in checks)
    return all(ok for _, ok, _ in checks), text


def emr_catalog(*, clinic) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The admin's "fetch from the EMR": the EMR's bookable services and its staff, ``([(id, name)], [(id,
    name)])``, for staff to copy into each service's "EMR service id" and each provider's "EMR practitioner id".
    ``EmrConfigError`` when the clinic's EMR cannot list them (only Square Appointments and Zenoti can)."""
    client = emr_client(clinic=clinic)
    if not hasattr(client, "catalog"):
        config = EmrConfig.objects.filter(clinic=clinic).first()
        kind = config.get_kind_display() if config else "The built-in calendar"
        raise EmrConfigError(f"{kind} cannot list its services and staff here.")
    return client.catalog()
