"""Settings for Parallel Test Dashboard, all read from the environment (see README)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from dashboard.envconf import (
    data_dir,
    env_bool,
    env_int,
    env_list,
    env_origins,
    env_proxy_ssl_header,
    env_str,
    env_url,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = data_dir()

SECRET_KEY = secret_key(DATA_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "dashboard.apps.StaticFilesConfig",
    "channels",
    "runs",
]
# daphne's app only brings the ASGI `runserver` (`serve` drives daphne itself); importing it
# loads Twisted, ~0.4 s that every other command, run_suite in CI above all, would pay.
if sys.argv[1:2] == ["runserver"]:
    INSTALLED_APPS.insert(0, "daphne")


def package_dir(name: str) -> Path:
    """Where an installed package lives, without importing it (ninja's import costs ~0.3 s)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, name
    return Path(next(iter(spec.submodule_search_locations))).resolve()


MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (plotly.js included) compressed and with content-hashed names, forever-cached.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "runs.pages.middleware.ErrorBodies",
]

ROOT_URLCONF = "dashboard.urls"
ASGI_APPLICATION = "dashboard.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # ninja's templates and static files serve the API docs page locally (no CDN).
        "DIRS": [BASE_DIR / "templates", package_dir("ninja") / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "runs.permissions.context",
            ],
        },
    },
]

DATABASE_URL = env_url("DATABASE_URL", ("postgres", "postgresql", "sqlite"))
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("PTD_DB_CONN_MAX_AGE", 60, minimum=0)
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "ptd.sqlite3",
            # WAL lets the pages read while the runner writes results.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # The prefix keeps several installations apart on one Redis.
            "CONFIG": {
                "hosts": [REDIS_URL],
                "capacity": 2000,
                "prefix": env_str("PTD_CHANNEL_PREFIX", "ptd"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 2000},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# plotly.js comes from the installed plotly package: nothing is fetched from a CDN.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("plotly", package_dir("plotly") / "package_data"),
    package_dir("ninja") / "static",  # the API docs page's Swagger UI
]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns at every start while it is missing
# `serve` collects static files into STATIC_ROOT at start (gzip-compressed, names carrying a
# hash of their content); whatever is not collected yet (tests, a bare `runserver`) is served
# from the finders under its plain name, uncompressed.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "dashboard.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Source maps are read by developer tools only: not worth compressing at every start. The rest
# is whitenoise.compress.Compressor.SKIP_COMPRESS_EXTENSIONS, written out: importing that
# module here cost every command (run_suite's start included) 20 ms. tests/test_envconf.py
# checks the list still holds every extension whitenoise skips.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = [
    "jpg", "jpeg", "png", "gif", "webp", "zip", "gz", "tgz", "bz2", "tbz", "xz", "br", "swf",
    "flv", "woff", "woff2", "3gp", "3gpp", "asf", "avi", "m4v", "mov", "mp4", "mpeg", "mpg",
    "webm", "wmv", "map",
]  # fmt: skip

PTD_MAX_CONCURRENT_RUNS = env_int("PTD_MAX_CONCURRENT_RUNS", 1, minimum=1)
# A member's runs waiting in the queue at a time (staff: no limit): one user cannot fill it.
PTD_MAX_QUEUED_PER_USER = env_int("PTD_MAX_QUEUED_PER_USER", 20, minimum=1)
# An outside (ingested) run that sends nothing for this long is marked interrupted.
PTD_EXTERNAL_TIMEOUT = env_int("PTD_EXTERNAL_TIMEOUT", 3600, minimum=60)
# Fold an ingested run into the flakiness summary after answering its /finish (tests: inline).
PTD_BACKGROUND_HISTORY = env_bool("PTD_BACKGROUND_HISTORY", True)
# The server's runner forks runs from a kept interpreter with pytest imported (runner.warm).
PTD_WARM_START = env_bool("PTD_WARM_START", True)
# Where run logs and per-run files (durations, junit) are kept.
PTD_RUNS_DIR = DATA_DIR / "runs"
# A run's log keeps at most this much of its output: the first and the last halves.
PTD_MAX_LOG_BYTES = env_int("PTD_MAX_LOG_BYTES", 10 * 1024 * 1024, minimum=4096)
# What tests printed (stdout, stderr, log records): each stream of one attempt, and a run's all.
PTD_MAX_OUTPUT_PER_TEST = env_int("PTD_MAX_OUTPUT_PER_TEST", 16 * 1024, minimum=256)
PTD_MAX_OUTPUT_PER_RUN = env_int("PTD_MAX_OUTPUT_PER_RUN", 4 * 1024 * 1024, minimum=1024)
# Runs cache bytecode and pytest's rewritten test modules here, not in the suite's folders
# (empty: write none, and rewrite every test module in every run).
PTD_PYCACHE_DIR = env_str("PTD_PYCACHE_DIR", str(DATA_DIR / "pycache"))
PTD_DEMO_SUITE_DIR = BASE_DIR / "runs" / "demo_suite"
PTD_SERVE_POLL_SECONDS = 1.0
# Runs across machines (runs.execution.fleet): the broker agents take shards from, how long an
# agent may be silent before it is lost (its heartbeat: PTD_AGENT_HEARTBEAT on the agent), how
# long a run waits for its machines before it fails.
PTD_BROKER_URL = env_str("PTD_BROKER_URL", "") or (REDIS_URL or "")
PTD_AGENT_LOST_SECONDS = float(env_str("PTD_AGENT_LOST_SECONDS", "15"))
PTD_AGENT_WAIT_SECONDS = float(env_str("PTD_AGENT_WAIT_SECONDS", "300"))

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Behind a TLS proxy (README, "Serving over HTTPS"). The proxy's header tells Django a request
# came over HTTPS; PTD_HTTPS makes the cookies secure and redirects plain HTTP; HSTS is opt-in.
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
PTD_HTTPS = env_bool("PTD_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PTD_HTTPS
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PTD_HTTPS)
if SECURE_SSL_REDIRECT and SECURE_PROXY_SSL_HEADER is None:
    # serve speaks plain HTTP to the proxy: without its header every request looks insecure.
    raise ImproperlyConfigured(
        "SECURE_SSL_REDIRECT needs SECURE_PROXY_SSL_HEADER (e.g. X-Forwarded-Proto,https): "
        "behind a TLS proxy every request would be redirected again and again"
    )
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

# Content-Security-Policy (django-csp): scripts and styles only from our own static files, no
# inline script, handler or style attribute anywhere in the templates. plotly.js adds its CSS
# through an *empty* <style> element it fills with the CSSOM: the hash of the empty string
# admits exactly that, no inline CSS text. The websocket is same-origin ('self' covers ws:).
EMPTY_STYLE = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, EMPTY_STYLE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "runs": {"handlers": ["console"], "level": env_str("PTD_LOG_LEVEL", "INFO")},
        "runner": {"handlers": ["console"], "level": env_str("PTD_LOG_LEVEL", "INFO")},
        # Server errors with their tracebacks (with DEBUG off, Django's own handler is silent).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
