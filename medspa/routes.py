"""URL helpers. Paths that providers and web forms call answer with and without the trailing slash, never with a
redirect (a redirected POST loses its body), and appear once in the OpenAPI schema."""

from django.urls import path


def slash_optional(route, view, name):
    """``route`` and ``route/`` to the same view; the second is left out of the schema."""
    return [path(route, view, name=name), path(f"{route}/", view, name=f"{name}-slash")]


def drop_slash_twins(endpoints, **kwargs):
    """drf-spectacular preprocessing hook: hide ``.../`` when ``...`` is also routed."""
    paths = {endpoint[0] for endpoint in endpoints}
    return [e for e in endpoints if not (e[0].endswith("/") and e[0].rstrip("/") in paths)]
