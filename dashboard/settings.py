"""Django settings for the message-flow dashboard.

Everything a deployment changes comes from the environment; the defaults are safe for a
laptop: embedded brokers, SQLite, the in-memory channel layer, DEBUG off.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from flows.transports.base import is_embedded_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DEBUG", False)
# A fixed key is fine for a local, single-user tool; deployments must set their own.
SECRET_KEY = os.environ.get("SECRET_KEY", "local-dev-only-not-secret-change-me")
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h.strip()]
# Where the server listens (`make run` passes HOST): beyond loopback the default SECRET_KEY
# is refused (dashboard/checks.py).
FLOWS_LISTEN_HOST = os.environ.get("FLOWS_LISTEN_HOST", "127.0.0.1")
FLOWS_LISTEN_PORT = os.environ.get("PORT", "8000")
# Classroom mode (classroom/auth.py): with a token, only the instructor (Bearer token or the
# session from /classroom/?token=…) may change state; beyond loopback the app makes one up.
FLOWS_CLASSROOM_TOKEN = os.environ.get("FLOWS_CLASSROOM_TOKEN", "").strip()
# Per-client bounds on what costs work, while a classroom token applies (classroom/ratelimit.py).
FLOWS_RATE_RUNS_PER_MIN = float(os.environ.get("FLOWS_RATE_RUNS_PER_MIN", "10"))
FLOWS_RATE_ACTIONS_PER_S = float(os.environ.get("FLOWS_RATE_ACTIONS_PER_S", "20"))
FLOWS_RATE_ANSWERS_PER_S = float(os.environ.get("FLOWS_RATE_ANSWERS_PER_S", "1"))
# The browser origins (scheme://host:port) that may open a WebSocket or send a POST; any
# other Origin is refused, whatever ALLOWED_HOSTS says (dashboard/origins.py).
FLOWS_ALLOWED_ORIGINS = [o.strip() for o in os.environ.get("FLOWS_ALLOWED_ORIGINS", "").split(",") if o.strip()] or [
    f"http://{host}:{os.environ.get('PORT', '8000')}" for host in ("127.0.0.1", "localhost", "[::1]")
]
CSRF_TRUSTED_ORIGINS = FLOWS_ALLOWED_ORIGINS + [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "flows",
    "classroom",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "dashboard.middleware.ContentSecurityPolicyMiddleware",
    "dashboard.middleware.ForeignOriginMiddleware",
    "dashboard.middleware.ApiRequestGuard",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "classroom.middleware.InstructorOnlyMiddleware",
    "classroom.middleware.RateLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
ASGI_APPLICATION = "dashboard.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csrf",
                "classroom.context_processors.instructor",
            ]
        },
    }
]


def database_from_url(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.path.lstrip("/") or "postgres",
            "USER": parsed.username or "",
            "PASSWORD": parsed.password or "",
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": int(os.environ.get("DB_CONN_MAX_AGE", "60")),
            "CONN_HEALTH_CHECKS": True,
        }
    if parsed.scheme == "sqlite":
        name = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path
        return sqlite_database(name or str(BASE_DIR / "db.sqlite3"))
    raise ValueError(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use postgres:// or sqlite:///)")


def sqlite_database(name: str) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "OPTIONS": {
            # WAL lets the event writer thread and request threads overlap; IMMEDIATE avoids
            # the "database is locked" upgrade deadlock between two writers.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        # A file, not :memory:, so the pipeline and run threads share it with the test thread;
        # one per process so concurrent test runs do not trample each other.
        "TEST": {"NAME": os.environ.get("SQLITE_TEST_NAME") or str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")},
    }


DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Where each broker is, kombu-style: the URL says the mode (README.md, "Broker modes").
#   AMQP_URL                 memory://  kombu's in-process broker    | amqp://user:pass@host:5672//
#   KAFKA_BOOTSTRAP_SERVERS  embedded   Tansu, a child process       | host:9092[,host:9092…]
#   MQTT_URL                 embedded   Mosquitto (amqtt without it) | mqtt://host:1883
#   REDIS_URL                memory://  the in-memory channel layer  | redis://host:6379/0
# FLOWS_BROKERS=embedded|external is the one switch: it picks the URL of every message broker
# whose variable is not set (the channel layer keeps its own, in-memory unless set).
# flows/checks.py reports a value none of this understands when the server starts.
FLOWS_BROKERS = os.environ.get("FLOWS_BROKERS", "embedded").strip().lower()
BROKER_URL_DEFAULTS = {
    # setting: (embedded, external)
    "AMQP_URL": ("memory://", "amqp://guest:guest@127.0.0.1:5672//"),
    "KAFKA_BOOTSTRAP_SERVERS": ("embedded", "127.0.0.1:9092"),
    "MQTT_URL": ("embedded", "mqtt://127.0.0.1:1883"),
    "REDIS_URL": ("memory://", "redis://127.0.0.1:6379/0"),
}
# Deprecated spellings of the same choice, still honoured (flows/checks.py warns about the
# first): FLOWS_BROKER_MODES=kafka=embedded,amqp=external per protocol, and
# CHANNEL_LAYER=memory|redis for the channel layer. Either one's "embedded" wins over a URL.
FLOWS_BROKER_MODES = {
    key.strip(): value.strip().lower()
    for key, _, value in (item.partition("=") for item in os.environ.get("FLOWS_BROKER_MODES", "").split(","))
    if value
}
CHANNEL_LAYER = os.environ.get("CHANNEL_LAYER", "").strip().lower()


def broker_url(setting: str, protocol: str) -> str:
    """The URL given in the environment, else the default for the protocol's mode."""
    embedded, external = BROKER_URL_DEFAULTS[setting]
    if protocol == "redis":
        mode = {"memory": "embedded", "redis": "external"}.get(CHANNEL_LAYER, "")
    else:
        mode = FLOWS_BROKER_MODES.get(protocol, "")
    if mode == "embedded":
        return embedded
    given = os.environ.get(setting, "").strip()
    if given:
        return given
    if not mode:
        mode = "embedded" if protocol == "redis" else FLOWS_BROKERS
    return external if mode == "external" else embedded


AMQP_URL = broker_url("AMQP_URL", "amqp")
KAFKA_BOOTSTRAP_SERVERS = broker_url("KAFKA_BOOTSTRAP_SERVERS", "kafka")
MQTT_URL = broker_url("MQTT_URL", "mqtt")
REDIS_URL = broker_url("REDIS_URL", "redis")


def redis_channel_layer(url: str) -> dict:
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that
        # channels-redis blocks in BZPOPMIN waiting for a message: an idle socket then
        # raises TimeoutError and tears the consumer down (channels_redis issue #422).
        "CONFIG": {"hosts": [{"address": url, "socket_timeout": 30}], "capacity": 200, "expiry": 30},
    }


if is_embedded_url(REDIS_URL):
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 200, "expiry": 30}}}
else:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}

# Bounds that keep any single request from starting an unbounded amount of work.
FLOWS_MAX_LIVE_RUNS = int(os.environ.get("FLOWS_MAX_LIVE_RUNS", "4"))
FLOWS_RUN_TIMEOUT_S = float(os.environ.get("FLOWS_RUN_TIMEOUT_S", "300"))
# Interactive runs: their deadline, how long without an action ends one by itself, and
# how many actions a second one takes at most.
FLOWS_INTERACTIVE_TIMEOUT_S = float(os.environ.get("FLOWS_INTERACTIVE_TIMEOUT_S", "3600"))
FLOWS_IDLE_S = float(os.environ.get("FLOWS_IDLE_S", "600"))
FLOWS_ACTIONS_PER_S = float(os.environ.get("FLOWS_ACTIONS_PER_S", "50"))
# glibc malloc arenas this process may use (flows/malloc_arenas.py): every run's short-lived
# threads otherwise spread freed memory over up to 8 arenas a core, and RSS creeps up run
# after run. 0 leaves glibc's default; a MALLOC_ARENA_MAX in the environment wins.
FLOWS_MALLOC_ARENA_MAX = int(os.environ.get("FLOWS_MALLOC_ARENA_MAX", "2"))
# How far a WebSocket client may fall behind (unacknowledged events) before the server
# stops pushing live batches to it and lets it catch up from the database instead.
FLOWS_WS_WINDOW = int(os.environ.get("FLOWS_WS_WINDOW", "20000"))
# Run retention (flows/retention.py): finished runs beyond the newest FLOWS_KEEP_RUNS, or
# finished more than FLOWS_KEEP_DAYS ago, are deleted with their events (0 turns a rule
# off); the server prunes in the background at most every FLOWS_PRUNE_EVERY_S.
FLOWS_KEEP_RUNS = int(os.environ.get("FLOWS_KEEP_RUNS", "500"))
FLOWS_KEEP_DAYS = float(os.environ.get("FLOWS_KEEP_DAYS", "30"))
FLOWS_PRUNE_EVERY_S = float(os.environ.get("FLOWS_PRUNE_EVERY_S", "300"))
# Fidelity (flows/fidelity.py, contracts "Fidelity"): an auto run samples once it plans more
# than FLOWS_FIDELITY_MAX_PLANNED completions, or records over FLOWS_FIDELITY_MAX_RATE
# events/s for a second after FLOWS_FIDELITY_MIN_EVENTS events. A sampled run records the
# whole trace of one message in FLOWS_SAMPLE_EVERY (at most FLOWS_SAMPLE_PER_S new ones a
# second) and emits its counts every FLOWS_FLOW_EVERY_S.
FLOWS_FIDELITY_MAX_PLANNED = int(os.environ.get("FLOWS_FIDELITY_MAX_PLANNED", "20000"))
FLOWS_FIDELITY_MAX_RATE = float(os.environ.get("FLOWS_FIDELITY_MAX_RATE", "1000"))
FLOWS_FIDELITY_MIN_EVENTS = int(os.environ.get("FLOWS_FIDELITY_MIN_EVENTS", "2000"))
FLOWS_SAMPLE_EVERY = int(os.environ.get("FLOWS_SAMPLE_EVERY", "100"))
FLOWS_SAMPLE_PER_S = float(os.environ.get("FLOWS_SAMPLE_PER_S", "20"))
FLOWS_FLOW_EVERY_S = float(os.environ.get("FLOWS_FLOW_EVERY_S", "0.25"))

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"


# Served from STATIC_ROOT by WhiteNoise (dashboard/static_files.py): `manage.py collectstatic`
# fills it with content-hashed, gzip- and brotli-compressed copies, and dashboard/static_build.py
# runs that whenever the sources are newer (server start-up, the test session).
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    # plotly.min.js from the installed package, so the app works offline.
    "dashboard.static_storage.PlotlyFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "dashboard.static_storage.HashedCompressedStorage"},
}
# Hashed names are cached for a year (immutable); unhashed ones for a minute.
WHITENOISE_MAX_AGE = 60
# Our scripts are for our own pages: no "Access-Control-Allow-Origin: *".
WHITENOISE_ALLOW_ALL_ORIGINS = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

CSRF_COOKIE_HTTPONLY = False  # API clients read the token from the csrftoken cookie
SESSION_COOKIE_SAMESITE = "Lax"
# Sessions hold only the instructor's token fingerprint and a student's random id: signed
# cookies, no table to grow. A forged cookie cannot name the instructor without the token.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {"flows": {"level": os.environ.get("FLOWS_LOG_LEVEL", "INFO")}},
}

CSRF_FAILURE_VIEW = "flows.views.csrf_failure"
