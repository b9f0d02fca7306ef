"""Django settings. Every deployment knob is an environment variable (see README)."""

from django.core.exceptions import ImproperlyConfigured

from config.env import BASE_DIR, env_bool, env_database, env_float, env_int, env_list, env_str

DEBUG = env_bool("DEBUG", False)
# Signs sessions, CSRF tokens and password resets. Without it only DEBUG runs, on a key that is
# public (it is in this file); otherwise the start is refused at the end of this module, once
# every other setting has been read. `manage.py demo` makes a key of its own (manage.py).
SECRET_KEY = env_str("SECRET_KEY", "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The admin's session and CSRF cookies travel over HTTPS only, unless in development (browsers
# take Secure cookies from http://localhost too); SECURE_COOKIES=false serves plain HTTP.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
# Messages wait in the session (a database row), not in a cookie of their own.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

INSTALLED_APPS = [
    "config.admin_site.WorkflowsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "django_celery_beat",  # beat's schedule in the database: workflows' schedule triggers
    "django_jsonform",  # the admin's step editor: forms made from each step type's schema
    "config.api",
    "entities",
    "workflows",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.api.middleware.NoStoreMiddleware",
    "config.api.middleware.UnstorableUrlMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.api.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "config.api.middleware.UnstorableAdminPostMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# Local state of the embedded defaults (SQLite file, broker folder).
(BASE_DIR / "var").mkdir(exist_ok=True)

DATABASES = {
    "default": env_database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# An admin search's statements stop after this long (PostgreSQL): a text searched in every
# entity's data reads the whole table (config.time_limit).
ADMIN_SEARCH_TIMEOUT_S = env_float("ADMIN_SEARCH_TIMEOUT_S", 10.0, minimum=0.0)

# Django's ModelBackend with each user's permissions kept in the shared cache between requests
# (PERMISSIONS_CACHE_S; config.api.auth_backends).
AUTHENTICATION_BACKENDS = ["config.api.auth_backends.CachedModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# A bulk create of 10,000 entities is a few megabytes of JSON (API bodies are limited by
# API_MAX_BODY_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")  # a login when set
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)  # STARTTLS (port 587)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)  # TLS from the start (port 465)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL: set one of them, not both.")
# Each of the SMTP exchange's network operations; unset, Django waits for ever, and a mail
# server that accepts the connection and never answers held a worker's thread (and its chunk).
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT_S", 10.0, minimum=0.1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "workflows@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    # One line per model call or webhook is noise; their outcomes go to the run's log.
    "loggers": {name: {"level": "WARNING"} for name in ("httpx", "httpx2", "httpcore")},
}

from config.settings.api import *  # noqa: E402, F403
from config.settings.celery import *  # noqa: E402, F403
from config.settings.metrics import *  # noqa: E402, F403
from config.settings.security import *  # noqa: E402, F403
from config.settings.workflows import *  # noqa: E402, F403

if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: set it to a long random string (python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))'), or DEBUG=true for development on a public key."
        )
    SECRET_KEY = "django-insecure-development-key-set-SECRET_KEY-in-production"  # noqa: S105
