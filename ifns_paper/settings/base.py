"""Settings shared by every environment. Values come from the environment
through the strict helpers in :mod:`ifns_paper.env`."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from ifns_paper.env import (
    database_config,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_path,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env_bool("DEBUG", False)

_secret = env_str("SECRET_KEY", "")
if not _secret:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY: must be set when DEBUG is off")
    _secret = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = _secret

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

IFNS_CONFIG_DIR = env_path("IFNS_CONFIG_DIR", Path("config"), base=BASE_DIR)
IFNS_DATA_DIR = env_path("IFNS_DATA_DIR", Path("data"), base=BASE_DIR)
IFNS_REGISTRY_DIR = IFNS_DATA_DIR / "registry"
# Base URL used for the links written into the registry files (spec §5.2).
IFNS_PUBLIC_URL = env_str("IFNS_PUBLIC_URL", "").rstrip("/")

REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "sessions_app",
    "broker_app",
    "telemetry_app",
    "mirror_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ifns_paper.urls"

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
                "mirror_app.context_processors.environment",
            ],
        },
    },
]

WSGI_APPLICATION = "ifns_paper.wsgi.application"
ASGI_APPLICATION = "ifns_paper.asgi.application"

DATABASES = {
    "default": database_config(
        env_str("DATABASE_URL", ""), sqlite_default=IFNS_DATA_DIR / "ifns_paper.sqlite3"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # A consumer waits for its next message with a 5 s blocking pop; redis-py 6+ reads with a 5 s
        # socket timeout by default, so a quiet socket (no message for 5 s) would die on a read
        # timeout. The socket timeout is set well above the pop's.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": 1000, "expiry": 60},
    }
}

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes an anonymous request's refusal a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "sessions_app.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browser, with CSRF on writes
    ],
    "DEFAULT_PERMISSION_CLASSES": ["ifns_paper.permissions.HasCapability"],  # roles: ifns_paper/roles.py
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "ifns_paper.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PARSER_CLASSES": ["ifns_paper.api.JSONParser"],  # JSON that PostgreSQL can store
    # Writes per user (reads are not throttled); failed token sign-ins per address: sessions_app/auth.py
    "DEFAULT_THROTTLE_CLASSES": ["ifns_paper.throttles.WriteThrottle"],
    "DEFAULT_THROTTLE_RATES": {"writes": env_str("IFNS_API_WRITE_RATE", "120/min")},
}
IFNS_TOKEN_FAILURES_PER_MIN = env_int("IFNS_TOKEN_FAILURES_PER_MIN", 20, minimum=1)

# The cache holds throttle counts: in Redis, so that every web process counts together.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "ifns:cache",
    }
}

SPECTACULAR_SETTINGS = {
    "TITLE": "IFNS Paper API",
    "DESCRIPTION": "Paper trading: sessions, lanes, telemetry, metrics, comparisons, SEL evaluations, "
                   "promotions. Simulated capital only. Errors: {\"error\": {\"code\", \"message\", "
                   "\"fields\"}}.",
    "VERSION": "v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "PREPROCESSING_HOOKS": ["ifns_paper.api_schema.only_v1"],
    "SWAGGER_UI_DIST": "SIDECAR",  # served from static files: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "SwitchStateEnum": "ifns_paper.api_schema.SWITCH_STATES",
        "BacktestKindEnum": "ifns_paper.api_schema.BACKTEST_KINDS",
        "BacktestStatusEnum": "ifns_paper.api_schema.BACKTEST_STATUSES",
        "PromotionKindEnum": "ifns_paper.api_schema.PROMOTION_KINDS",
        "PromotionStatusEnum": "ifns_paper.api_schema.PROMOTION_STATUSES",
    },
}

# --- Celery -------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fix-up closes the database connections around every task unless this is set
# (then only every 2 x this many); ifns_paper/celery.py applies Django's CONN_MAX_AGE rules instead.
CELERY_DB_REUSE_MAX = 1_000_000
# Tasks are short steps; a redelivered unacked task must come back quickly,
# but never while the original could still be running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 300}
# Session steps run on IFNS_STEP_SHARDS queues ``steps.<n>``; a session always goes to the
# same one (crc32 of its id), and each queue is consumed by one solo worker that keeps its
# sessions' engines in memory (Procfile: steps0, steps1, ...).
IFNS_STEP_SHARDS = env_int("IFNS_STEP_SHARDS", 2, minimum=1)
# Metrics: the annual risk-free rate Sharpe and Sortino take out (0.04 = 4 %), per period
# (1 + rf) ** (1 / periods a year) - 1 (ifns_paper.metrics.conventions).
IFNS_RISK_FREE_ANNUAL = env_float("IFNS_RISK_FREE_ANNUAL", 0.0, minimum=-0.99)
# Market-data recordings: every feed process also writes what it publishes to hourly
# segments under IFNS_RECORDINGS_DIR/<feed>/ (ifns_paper.feeds.recorder), kept for
# IFNS_RECORDING_RETENTION_HOURS; shadow backtests replay them. IFNS_RECORD_FEEDS=0: off.
# Results folders (canonical format) the API may import: only from under here.
IFNS_IMPORTS_DIR = env_path("IFNS_IMPORTS_DIR", IFNS_DATA_DIR / "imports", base=BASE_DIR)
IFNS_RECORD_FEEDS = env_bool("IFNS_RECORD_FEEDS", True)
IFNS_RECORDINGS_DIR = env_path("IFNS_RECORDINGS_DIR", IFNS_DATA_DIR / "recordings", base=BASE_DIR)
IFNS_RECORDING_RETENTION_HOURS = env_float("IFNS_RECORDING_RETENTION_HOURS", 72.0, minimum=1.0)
# Tests only: when this file exists, a step worker dies ("die") or holds its transaction open
# ("pause <s>") after inserting a step's orders and fills, before its events and checkpoints
# (sessions_app.steps._test_hook_after_execution_rows). Empty: off.
IFNS_TEST_STEP_HOOK_FILE = env_str("IFNS_TEST_STEP_HOOK_FILE", "")
CELERY_BEAT_SCHEDULE = {
    "sessions-tick": {
        "task": "sessions_app.tasks.sessions_tick",
        "schedule": 1.0,
        "options": {"expires": 2},
    },
    "summaries-refresh": {
        "task": "sessions_app.tasks.summaries_refresh",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "comparisons-roll": {
        "task": "sessions_app.tasks.comparisons_roll",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "series-thin": {
        "task": "telemetry_app.tasks.series_thin",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    "registry-sync": {
        "task": "sessions_app.tasks.registry_sync",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
