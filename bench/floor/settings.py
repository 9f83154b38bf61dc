"""The floor: a bare Django project, the yardstick of bench/bench_throughput.py.

Its one page is what any logged-in page of any Django site pays at least: Django's
default middleware (as `startproject` makes it), a database session read, its user, one
query (ten rows) and a small template. It runs on what the client area runs on: the same
Django, the same database engine and options (SQLite in WAL mode, the same busy timeout
and transaction mode; or PostgreSQL from the same DATABASE_URL form), sessions in the
database, Argon2 passwords, and gunicorn with src/config/gunicorn.conf.py. So the ratio
of a client-area page to this page is the client area's own cost, whatever the machine.

By hand (from the repository's root; bench_throughput.py does all this itself):

    export PYTHONPATH=bench DJANGO_SETTINGS_MODULE=floor.settings
    export DATABASE_URL=sqlite:///$(mktemp -d)/floor.sqlite3
    .venv/bin/python -m django migrate
    .venv/bin/python -m django floor_user floor@example.com some-password
    .venv/bin/gunicorn -c src/config/gunicorn.conf.py floor.wsgi:application
"""

from pathlib import Path

import environ

env = environ.Env()

SECRET_KEY = env.str("FLOOR_SECRET_KEY", default="floor-only-not-a-secret-" + "x" * 40)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "floor",
]

# Django's default stack, as `startproject` writes it.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "floor.urls"
WSGI_APPLICATION = "floor.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The same engine and options as src/config/settings/base.py.
DATABASES = {"default": env.db_url("DATABASE_URL")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SESSION_ENGINE = "django.contrib.sessions.backends.db"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
LOGIN_URL = "/login/"
USE_TZ = True
TIME_ZONE = "UTC"
