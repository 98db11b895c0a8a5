"""The project package: settings, urls, Celery app, and the tenant core (clinics, staff, service catalog)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
