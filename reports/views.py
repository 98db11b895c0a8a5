"""The outcomes page in the admin (``/admin/outcomes/``) and its CSV export: thin, over ``services``."""

import csv
from datetime import timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse

from medspa.audit import audit_record
from medspa.frontdesk import clinic_today
from medspa.models import AuditEvent, Clinic, format_cents

from . import charts, services
from .forms import OutcomesForm

PERMISSION = "conversation.view_conversation"  # whoever reads the conversations reads what came of them
DEFAULT_DAYS = 30


def _form(request, clinics):
    data = request.GET.copy()
    first = clinics.first()
    if first is not None:
        clinic = clinics.filter(pk=data.get("clinic")).first() if data.get("clinic", "").isdigit() else None
        today = clinic_today(clinic or first)
        data.setdefault("clinic", str(first.pk))
        data.setdefault("end", today.isoformat())
        data.setdefault("start", (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat())
    return OutcomesForm(data, clinics=clinics)


def outcomes_view(request):
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    clinics = Clinic.objects.for_user(request.user).order_by("name")
    form = _form(request, clinics)
    context = {**admin.site.each_context(request), "title": "Outcomes", "form": form, "outcomes": None}
    if not form.is_valid():
        return TemplateResponse(request, "reports/outcomes.html", context, status=400 if request.GET else 200)
    clinic, start, end = form.cleaned_data["clinic"], form.cleaned_data["start"], form.cleaned_data["end"]
    outcomes = services.outcomes_compute(clinic=clinic, start=start, end=end)
    if request.GET.get("format") == "csv":
        return _csv(request, outcomes)
    funnel = [(label, outcomes.entered[origin]) for origin, label in services.ORIGINS]
    funnel.append(("Conversations opened", outcomes.opened))
    funnel += [(label, outcomes.stages[key]) for key, label in services.STAGES]
    funnel.append(("No-shows", outcomes.no_shows))
    context.update(
        outcomes=outcomes,
        funnel=charts.funnel_bars(funnel, top=outcomes.opened),
        funnel_height=len(funnel) * charts.FUNNEL_ROW,
        hours=charts.hour_bars(outcomes.inbound_by_hour),
        busiest=sorted(range(24), key=lambda h: (-outcomes.inbound_by_hour[h], h))[:3],
        median_minutes=None if outcomes.reply_median is None else outcomes.reply_median / 60,
        p90_minutes=None if outcomes.reply_p90 is None else outcomes.reply_p90 / 60,
        deposits=format_cents(outcomes.deposits_paid_cents),
        refunded=format_cents(outcomes.deposits_refunded_cents),
        estimate=format_cents(outcomes.booked_estimate_cents),
        csv_query=_query(request, format="csv"),
        several=clinics.count() > 1,
    )
    return TemplateResponse(request, "reports/outcomes.html", context)


def _query(request, **extra):
    query = request.GET.copy()
    for key, value in extra.items():
        query[key] = value
    return query.urlencode()


def _csv(request, outcomes):
    audit_record(
        action=AuditEvent.Action.EXPORT,
        model=Clinic,
        obj=outcomes.clinic,
        request=request,
        detail={"report": "outcomes", "days": (outcomes.end - outcomes.start).days + 1},
    )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"outcomes-{outcomes.clinic.slug}-{outcomes.start}-{outcomes.end}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(["section", "figure", "value"])
    writer.writerows(services.outcomes_rows(outcomes))
    return response


def outcomes_admin_view():
    return admin.site.admin_view(outcomes_view)
