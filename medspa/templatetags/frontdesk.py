"""The home page's tags: today's front desk (medspa/frontdesk.py) and the index's app list, clinic apps first."""

from django import template
from django.utils import timezone

from medspa.clinic_time import age, clinic_local
from medspa.frontdesk import attention_list, panels
from medspa.models import Clinic

register = template.Library()

# Apps for operators, not for the front desk: shown to superusers last, folded away.
PLATFORM_APPS = {"auth", "authtoken", "axes", "otp_static", "otp_totp", "django_otp"}


@register.inclusion_tag("admin/frontdesk/home.html", takes_context=True)
def frontdesk_home(context):
    request = context["request"]
    clinics = list(Clinic.objects.for_user(request.user).filter(active=True).order_by("name"))
    now = timezone.now()
    attention = [
        {"item": item, "age": age(item.since, now), "at": clinic_local(item.since, item.clinic)}
        for item in attention_list(request, clinics)
    ]
    return {
        "request": request,
        "clinics": clinics,
        "several": len(clinics) > 1,
        "attention": attention,
        "panels": list(panels(request, clinics)) if clinics else [],
    }


@register.simple_tag
def split_apps(app_list):
    """``{"clinic": [...], "platform": [...]}``: the index's apps, the operators' ones apart."""
    return {
        "clinic": [app for app in app_list if app["app_label"] not in PLATFORM_APPS],
        "platform": [app for app in app_list if app["app_label"] in PLATFORM_APPS],
    }
