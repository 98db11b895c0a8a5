"""Small HTTP helpers: the client's address behind known proxies, and web origins."""

from urllib.parse import urlsplit

from django.conf import settings


def client_ip(request) -> str | None:
    """The caller's IP: REMOTE_ADDR, or the entry TRUSTED_PROXY_COUNT hops back in X-Forwarded-For.

    Only proxies we run may append to X-Forwarded-For, so anything a client writes there is ignored.
    Used by lead rate limiting, consent records, the audit log and login lockout alike.
    """
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops > 0 and forwarded:
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if chain:
            return chain[-min(hops, len(chain))]
    return request.META.get("REMOTE_ADDR") or None


def origin_of(url: str) -> str:
    """``https://www.Example.com/book?x`` -> ``https://www.example.com``; '' when not an http(s) URL."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    default_port = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        return ""
    host = parts.hostname.lower()
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")
