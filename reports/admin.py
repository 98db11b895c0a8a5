"""The outcomes page's place on the admin's home (medspa/frontdesk.py): a link, for whoever may open it."""

from medspa import frontdesk

from .views import PERMISSION


@frontdesk.panel(90, "reports/frontdesk_outcomes.html")
def _outcomes_link(request, clinics):
    if not request.user.has_perm(PERMISSION) or not clinics:
        return None
    return {"clinics": clinics}
