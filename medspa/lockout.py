"""The admin login lockout (django-axes): one limit per username and IP, a higher one per IP.

- LOGIN_FAILURE_LIMIT (``AXES_FAILURE_LIMIT``, 5) failures for one username from one IP: guessing one account's
  password;
- LOGIN_IP_FAILURE_LIMIT (``AXES_IP_FAILURE_LIMIT``, 20) failures from one IP, whatever the usernames: spraying a
  password over many accounts. Higher, so that a clinic's staff behind one address are not all locked out by one
  person who forgot a password.

Both last LOGIN_LOCKOUT_MINUTES, and the lockout answer is axes's (429, its message). axes records each failure
once and reads it through each of ``AXES_LOCKOUT_PARAMETERS`` (``[["username", "ip_address"], "ip_address"]``), but
compares the largest count with one limit (``AxesDatabaseHandler.get_failures`` against ``AXES_FAILURE_LIMIT``, also
as a callable, which receives no count). So ``get_failures`` here says how many failures count against that
limit: the username's from this IP, or the limit itself once the IP's reach AXES_IP_FAILURE_LIMIT.

A successful login forgives that username's failures from the IP (``AXES_RESET_ON_SUCCESS``), not those for other
usernames: otherwise one valid account would let a sprayer start over.
"""

from axes.conf import settings
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit, get_lockout_parameters
from django.db.models import Sum


def _per_ip(parameter) -> bool:
    return parameter in ("ip_address", ["ip_address"], ("ip_address",))


class LoginLockoutHandler(AxesDatabaseHandler):
    def _counts(self, request, credentials):
        parameters = get_lockout_parameters(request, credentials)
        attempts = self.get_user_attempts(request, credentials)  # one queryset per parameter set, in that order
        for parameter, queryset in zip(parameters, attempts, strict=True):
            yield parameter, queryset.aggregate(total=Sum("failures_since_start"))["total"] or 0

    def get_failures(self, request, credentials=None) -> int:
        limit = get_failure_limit(request, credentials)
        counted = 0
        for parameter, failures in self._counts(request, credentials):
            if not _per_ip(parameter):
                counted = max(counted, failures)
            elif failures >= settings.AXES_IP_FAILURE_LIMIT:
                counted = max(counted, limit)
        return counted

    def reset_user_attempts(self, request, credentials=None) -> int:
        parameters = get_lockout_parameters(request, credentials)
        attempts = self.filter_user_attempts(request, credentials)
        count = 0
        for parameter, queryset in zip(parameters, attempts, strict=True):
            if not _per_ip(parameter):
                count += queryset.delete()[0]
        return count
