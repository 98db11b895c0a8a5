"""Settings for the medspa front desk, driven by environment variables.

Every variable is optional: unset means the embedded development default described in README.md
(SQLite, in-process cache, Celery tasks run eagerly, console SMS, sandbox payments). With DATABASE_URL and
REDIS_URL set the same module uses PostgreSQL, the Redis cache and a real Celery broker.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp import constants as csp

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local, untracked .env is read when present; real deployments set the environment.
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")


def _secret(name, default=None):
    """A secret from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


# Development values: the `insecure_defaults` system check refuses them when DEBUG is off.
DEV_SECRET_KEY = "django-insecure-dev-only-medspa-front-desk-change-me"
DEV_FIELD_ENCRYPTION_KEY = "ZGV2LW9ubHktZmllbGQta2V5LWNoYW5nZS1tZS0wMDA="

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = _secret("SECRET_KEY", DEV_SECRET_KEY)
# One key, or several separated by commas: the first encrypts, all decrypt (rotation).
FIELD_ENCRYPTION_KEY = _secret("FIELD_ENCRYPTION_KEY", DEV_FIELD_ENCRYPTION_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_BASE_URL])
# How many reverse proxies in front of us append to X-Forwarded-For (0: use REMOTE_ADDR only).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "django_prometheus",
    "axes",
    # Two-factor login for staff (medspa/two_factor.py): authenticator apps and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    # Ours. medspa comes after the contrib and third-party apps so that its admin can re-register theirs.
    "medspa",
    "inbox",
    "leads",
    "messaging",
    "conversation",
    "knowledge",
    "emr",
    "bookings",
    "payments",
    "lifecycle",
    "waitlist",
    "reports",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Outermost of ours, so every response gets a Content-Security-Policy (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "medspa.two_factor.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Admin pages in the clinic's time zone, whatever the server's (medspa/clinic_time.py).
    "medspa.clinic_time.ClinicTimeMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

if not DEBUG:
    # Production serves collected static files itself (collectstatic runs in the Dockerfile); runserver does in DEBUG.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )

ROOT_URLCONF = "medspa.urls"
WSGI_APPLICATION = "medspa.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters bound by the server, so psycopg prepares a statement once it has run DATABASE_PREPARE_THRESHOLD
    # times on a connection, and PostgreSQL no longer parses and plans it on every run: that was most of its CPU
    # for our short indexed queries (docs/BENCHMARKS.md, "Prepared statements"). Empty: neither (client-side
    # binding, Django's default), for a pooler in transaction mode (PgBouncer without max_prepared_statements).
    _prepare_threshold = env.str("DATABASE_PREPARE_THRESHOLD", default="5").strip()
    if _prepare_threshold:
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=int(_prepare_threshold)
        )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite is the single-process development default; wait for the writer instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's, with one Redis client per pool instead of one per call (medspa/cache.py).
            "BACKEND": "medspa.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "medspa",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "medspa"}}

# --- Events (medspa/events.py): who reacts, in order, when a lower app publishes -----------------------------------
# The one place to read what follows each event. A lower app never imports a higher one (.importlinter); it
# publishes, and these handlers of higher apps run, in this order, in the publisher's transaction.

EVENT_HANDLERS = {
    "medspa.staff_text": ["messaging.handlers.staff_text"],
    "messaging.text_received": ["conversation.handlers.text_received"],
    "messaging.call_missed": ["conversation.handlers.call_missed"],
    "messaging.message_sent": ["conversation.handlers.message_sent"],
    "messaging.message_failed": ["conversation.handlers.message_failed"],
    "emr.busy_times": ["bookings.handlers.busy_times"],
    "emr.square_credentials": ["payments.handlers.square_credentials"],
    "bookings.booking_changed": [
        "conversation.handlers.booking_changed",
        "lifecycle.handlers.booking_changed",
        "waitlist.handlers.booking_changed",
    ],
    "bookings.booking_cancelled": [
        "payments.handlers.booking_cancelled",
        "lifecycle.handlers.booking_cancelled",
        "waitlist.handlers.booking_cancelled",
    ],
    "bookings.booking_moved": ["payments.handlers.booking_moved", "lifecycle.handlers.booking_moved"],
    "bookings.hold_expired": ["waitlist.handlers.hold_expired"],
    "lifecycle.times_offered": ["conversation.handlers.times_offered"],
    "lifecycle.review_blocked": ["conversation.handlers.review_blocked"],
    "lifecycle.consent_asked": ["leads.handlers.marketing_consent"],
    "bookings.patient_email": ["leads.handlers.patient_email"],
    "payments.refund_told": ["conversation.handlers.refund_told"],
    "waitlist.offer_made": ["conversation.handlers.waitlist_offer_made"],
}

# The texts after a booking read medspa.clock.now(): with this on, a cache-held offset moves it forward (the e2e
# stack's scenarios move time by it). Never in production: a system check refuses it with DEBUG off.
CONTROLLABLE_CLOCK = env.bool("CONTROLLABLE_CLOCK", default=False)

# --- Celery (medspa/celery.py reads the CELERY_ names) -----------------------------------------------------------

# The in-memory broker (tasks run eagerly) named with a host, so kombu has no "No hostname was supplied" to warn.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
# No Redis: tasks run in the calling process, so `make run` needs no worker.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Without this, Celery's Django fixup closes every database connection before and after each task: a new
# PostgreSQL connection (and server process) per task. With it, the fixup leaves them alone and medspa/celery.py
# treats a task like a request: Django's close_old_connections before and after it (CONN_MAX_AGE, CONN_HEALTH_CHECKS;
# a connection left broken or in a transaction is closed). The count only closes them after that many tasks.
CELERY_DB_REUSE_MAX = 100_000
# Longer than any countdown we use: far-future sends are scheduled from the database, not the broker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = "UTC"
# A Celery worker's main process serves Prometheus /metrics on this port (unset: off); for workers on hosts without
# a web process. With PROMETHEUS_MULTIPROC_DIR it serves that directory (medspa/worker_metrics.py).
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=None)
CELERY_BEAT_SCHEDULE = {
    # Webhook events whose task was lost (Redis flushed, worker killed) or whose retry time came.
    "inbox-sweep": {"task": "inbox.sweep", "schedule": 10.0},
    # Deferred texts (quiet hours, retry backoff) live in the database with a due time; this releases them.
    "send-due-messages": {"task": "messaging.send_due_messages", "schedule": 5.0},
    # Texts stuck in queued (task lost with Redis), sending (worker killed) or unknown (timeout): ask the provider.
    # Staff alerts whose email task was lost with the broker.
    "email-unsent-alerts": {"task": "medspa.email_unsent_alerts", "schedule": 60.0},
    "reconcile-messages": {"task": "messaging.reconcile_messages", "schedule": 30.0},
    "expire-booking-holds": {"task": "bookings.expire_holds", "schedule": 30.0},
    # Texts after a booking (reminders, review requests...) whose send time came, from their rows (lifecycle).
    "lifecycle-sweep": {"task": "lifecycle.sweep", "schedule": 30.0},
    # The next days' bookings checked against the EMR (cancelled or moved there by staff).
    "lifecycle-emr-sync": {"task": "lifecycle.emr_sync", "schedule": 900.0},
    # Payment outbox steps that are due for a retry, or whose worker died mid-step.
    "payments-outbox-sweep": {"task": "payments.outbox_sweep", "schedule": 30.0},
    # Freed times and waitlist offers whose task was lost; waitlist entries whose window passed.
    "waitlist-sweep": {"task": "waitlist.sweep", "schedule": 30.0},
    # Patient texts whose answering task died with its worker (Redis would give it back only after an hour).
    "conversation-resume-unanswered": {"task": "conversation.resume_unanswered", "schedule": 10.0},
    # 10DLC registrations waiting at Telnyx/TCR (brand verification, campaign vetting, number assignment).
    "tendlc-refresh": {"task": "messaging.tendlc_refresh", "schedule": 600.0},
}

# --- Email: staff alerts (manual bookings, payments to review, urgent messages); ids and links only ---------------

# smtp+tls://user:password@smtp.example.com:587 in production; printed to the console by default.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Med Spa Front Desk <frontdesk@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Auth, sessions, lockout --------------------------------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Idle timeout for staff sessions (HIPAA automatic logoff): every request pushes expiry forward.
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True

AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# Two limits (medspa/lockout.py): failures for one username from one IP, and, higher, from one IP over any
# usernames (password spraying).
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_IP_FAILURE_LIMIT = env.int("LOGIN_IP_FAILURE_LIMIT", default=20)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "medspa.lockout.LoginLockoutHandler"
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "medspa.http.client_ip"
AXES_VERBOSE = False

# Two-factor login (medspa/two_factor.py): optional for staff, required for members of a clinic whose owner turned on
# "require two-factor login", and for superusers when this is on (by default with DEBUG off, i.e. in production).
STAFF_2FA_REQUIRED_FOR_SUPERUSERS = env.bool("STAFF_2FA_REQUIRED_FOR_SUPERUSERS", default=not DEBUG)
# The name authenticator apps show next to the username.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Medspa front desk")
# Wrong codes: after n consecutive failures a device accepts no code for factor * 2**(n-1) seconds.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1

# --- Security headers (production: DEBUG off) ---------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every response. Inline <script>/<style> carry the request's nonce
# ({{ request.csp_nonce }}); nothing inline without one runs, nothing is loaded from another origin, no eval. The
# admin (Django 5.2 has no inline scripts) and Swagger UI (medspa/templates/medspa/swagger_ui.html) need nothing
# more; data: images are Swagger UI's icons. The lead form alone replaces frame-ancestors with 'self' and its
# clinic's origins (leads/views.py). docs/ARCHITECTURE.md, "Security baseline".
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF, csp.NONCE],
        "img-src": [csp.SELF, "data:"],
        "object-src": [csp.NONE],
        "base-uri": [csp.SELF],
        "form-action": [csp.SELF],
        "frame-ancestors": [csp.NONE],
    }
}
if env.bool("BEHIND_TLS_PROXY", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe over plain HTTP; webhooks are never redirected because providers call https directly.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
DEFAULT_EXCEPTION_REPORTER_FILTER = "medspa.logging.PatientSafeExceptionReporterFilter"

# --- API ----------------------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "medspa.pagination.StaffPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"leads": env.str("LEAD_RATE_LIMIT", default="10/minute")},
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Medspa front desk API",
    "DESCRIPTION": "Public lead capture and the clinic staff API (token auth, scoped to the caller's clinics).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["medspa.routes.drop_slash_twins"],
    # No badge from validator.swagger.io: it would send it our schema's URL (and break img-src 'self').
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}
# /api/schema and /api/docs answer staff only (is_staff, session or token) unless this is on; then anyone, and a
# caller who is not staff sees only the endpoints it may call (lead capture). medspa/ops.py, docs/DECISIONS.md.
API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", default=False)
# /metrics (medspa/ops.py): a Prometheus bearer token and/or client addresses or networks (medspa.http.client_ip);
# when both are set a scrape needs both. Neither set: open, as in development; `check --deploy` warns (W005).
METRICS_TOKEN = _secret("METRICS_TOKEN", "")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])

# Lead capture: only /api/leads answers cross-origin, and only to origins a clinic lists (leads/cors.py).
CORS_URLS_REGEX = r"^/api/leads/?$"
CORS_ALLOW_METHODS = ["OPTIONS", "POST"]
# The public lead endpoints (the hosted form /l/<slug>/ and /api/leads): one body limit, refused with a 413 before
# the body is read, and a field count (no files at all); leads/limits.py. 32 KiB holds a 1,600-character message
# of emoji percent-encoded (19,200 bytes) with every other field at its longest.
LEAD_MAX_BODY_BYTES = env.int("LEAD_MAX_BODY_BYTES", default=32 * 1024)
LEAD_MAX_FIELDS = env.int("LEAD_MAX_FIELDS", default=30)
# A second identical submission inside this window returns the first lead instead of a new one.
LEAD_DUPLICATE_WINDOW = timedelta(minutes=env.int("LEAD_DUPLICATE_WINDOW_MINUTES", default=10))

# --- Internationalisation, static files ---------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Date-times end with their zone's abbreviation ("Dec. 1, 2026, 3:12 a.m. EST"): medspa/formats/en/formats.py.
FORMAT_MODULE_PATH = ["medspa.formats"]
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Providers (their code arrives with the messaging, payments and assistant work) -------------------------------

TELNYX_API_KEY = _secret("TELNYX_API_KEY", "")
# One backend for every text (console, locmem or a dotted path); empty: each number's provider (telnyx/twilio).
SMS_BACKEND = env.str("SMS_BACKEND", default="")
TELNYX_PUBLIC_KEY = env.str("TELNYX_PUBLIC_KEY", default="")
TELNYX_BASE_URL = env.str("TELNYX_BASE_URL", default="")
TELNYX_MESSAGING_PROFILE_ID = env.str("TELNYX_MESSAGING_PROFILE_ID", default="")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = _secret("TWILIO_AUTH_TOKEN", "")
# Twilio's shared-key webhook signatures (HMAC-SHA256, announced by X-Twilio-Webhooks-Signature-Settings): the key's
# secret; a comma-separated list during rotation. Requests without that header are checked with TWILIO_AUTH_TOKEN.
TWILIO_WEBHOOK_SHARED_KEY = _secret("TWILIO_WEBHOOK_SHARED_KEY", "")
TWILIO_BASE_URL = env.str("TWILIO_BASE_URL", default="")
if not SMS_BACKEND and not (TELNYX_API_KEY or TWILIO_ACCOUNT_SID):
    SMS_BACKEND = "console"  # the embedded default: texts are printed, not sent
# A text still "sending" or "unknown" after this many seconds is settled by asking its provider (at least 60:
# longer than a send attempt can last, so the sweep never races a request in flight). docs/DECISIONS.md.
SMS_STUCK_SECONDS = env.int("SMS_STUCK_SECONDS", default=120)
# Telnyx signs webhook timestamps; older than this (seconds) is refused as a replay.
TELNYX_WEBHOOK_TOLERANCE = env.int("TELNYX_WEBHOOK_TOLERANCE", default=300)
# No provider event comes near this (an MMS with ten media is a few KB): larger bodies are refused with a 413.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
SQUARE_ACCESS_TOKEN = _secret("SQUARE_ACCESS_TOKEN", "")
SQUARE_ENVIRONMENT = env.str("SQUARE_ENVIRONMENT", default="sandbox")
SQUARE_BASE_URL = env.str("SQUARE_BASE_URL", default="")
SQUARE_LOCATION_ID = env.str("SQUARE_LOCATION_ID", default="")
SQUARE_WEBHOOK_SIGNATURE_KEY = _secret("SQUARE_WEBHOOK_SIGNATURE_KEY", "")
SQUARE_WEBHOOK_URL = env.str("SQUARE_WEBHOOK_URL", default=f"{PUBLIC_BASE_URL}/webhooks/square")
# The sandbox checkout (/pay/<token>/, test payments, no money moves): on by default only in development.
PAYMENTS_SANDBOX_ENABLED = env.bool("PAYMENTS_SANDBOX_ENABLED", default=DEBUG)
# How long a deposit link holds its time; the hold is released when it passes unpaid.
PAYMENTS_LINK_MINUTES = env.int("PAYMENTS_LINK_MINUTES", default=30)
CONVERSATION_ENGINE = env.str("CONVERSATION_ENGINE", default="auto")
# The rules engine's second reading of intent (conversation/intent.py, a classifier trained on the corpus's dev half).
CONVERSATION_INTENT_MODEL = env.bool("CONVERSATION_INTENT_MODEL", default=True)
# Registries a deployment may extend or override, name -> dotted path of a class ("name=path,name=path"):
# conversation/engines.py ENGINES (CONVERSATION_ENGINE names one), emr/services.py EMR_CLIENTS (by EmrConfig kind),
# payments/services.py PAYMENT_BACKENDS (by provider).
ENGINES = env.dict("ENGINES", default={})
EMR_CLIENTS = env.dict("EMR_CLIENTS", default={})
PAYMENT_BACKENDS = env.dict("PAYMENT_BACKENDS", default={})
OPENAI_API_KEY = _secret("OPENAI_API_KEY", "")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini")
# Each model call gives up after this long; the SDK retries 429/5xx/timeouts this many times with backoff, then
# the rules engine answers the turn (a fallback, counted in medspa_assistant_fallbacks_total).
OPENAI_TIMEOUT_SECONDS = env.float("OPENAI_TIMEOUT_SECONDS", default=10.0)
OPENAI_MAX_RETRIES = env.int("OPENAI_MAX_RETRIES", default=1)
OPENAI_MAX_COMPLETION_TOKENS = env.int("OPENAI_MAX_COMPLETION_TOKENS", default=300)
# The first call with new strict tool schemas waits while OpenAI prepares them (tens of seconds): its allowance.
OPENAI_FIRST_CALL_TIMEOUT_SECONDS = env.float("OPENAI_FIRST_CALL_TIMEOUT_SECONDS", default=60.0)
# Reasoning models (o-series, gpt-5): tokens allowed for hidden reasoning on top of the reply's cap, and the effort.
OPENAI_REASONING_TOKENS = env.int("OPENAI_REASONING_TOKENS", default=2000)
OPENAI_REASONING_EFFORT = env.str("OPENAI_REASONING_EFFORT", default="low")
# Dollars per million tokens (gpt-4o-mini list prices): the cost recorded on each turn.
OPENAI_PRICE_INPUT = env.float("OPENAI_PRICE_INPUT", default=0.15)
OPENAI_PRICE_CACHED_INPUT = env.float("OPENAI_PRICE_CACHED_INPUT", default=0.075)
OPENAI_PRICE_OUTPUT = env.float("OPENAI_PRICE_OUTPUT", default=0.60)
# Texts sent in a row within this many seconds are answered together (ignored when tasks run eagerly).
CONVERSATION_DEBOUNCE_SECONDS = env.float("CONVERSATION_DEBOUNCE_SECONDS", default=1.0)
# After this many turns a conversation goes to staff (a cap on what one patient can make the assistant do).
ASSISTANT_MAX_TURNS = env.int("ASSISTANT_MAX_TURNS", default=60)
# The same for tool calls and model tokens over a conversation, and model rounds within one turn.
ASSISTANT_MAX_TOOL_CALLS = env.int("ASSISTANT_MAX_TOOL_CALLS", default=150)
ASSISTANT_MAX_TOKENS = env.int("ASSISTANT_MAX_TOKENS", default=200_000)
ASSISTANT_MAX_TOOL_ROUNDS = env.int("ASSISTANT_MAX_TOOL_ROUNDS", default=5)
# How many earlier texts an LLM turn reads (cached in Redis; PostgreSQL is the truth).
ASSISTANT_CONTEXT_MESSAGES = env.int("ASSISTANT_CONTEXT_MESSAGES", default=12)
# How long an answer to a repeated question is reused (it is retired at once when the clinic's information changes).
ASSISTANT_ANSWER_CACHE_SECONDS = env.int("ASSISTANT_ANSWER_CACHE_SECONDS", default=7 * 24 * 3600)

# --- Logging: ids, never patient data (medspa/logging.py) ---------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Client-caused (django.security.*, 4xx): WARNING, no traceback. Then redaction, traceback included.
        "client_errors": {"()": "medspa.logging.ClientErrorFilter"},
        "redact": {"()": "medspa.logging.RedactPatientDataFilter"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_errors", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers go (DEFAULT_LOGGING's console, unfiltered, in DEBUG; mail_admins; runserver's
        # django.server): every django.* record reaches the console above, through its filters.
        "django": {"handlers": []},
        # Django logs the request line of 4xx/5xx; our filter strips phone numbers and e-mails from it.
        "django.request": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
        # HTTP clients log full request URLs at INFO, query strings included (EMR patient searches carry names).
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
