"""Settings of the example Django project (clerkguard's Django and DRF integrations).

Clerk is configured from the environment (``CLERK_PUBLISHABLE_KEY``, or
``CLERK_JWKS_URI`` / ``CLERK_SECRET_KEY`` / ``CLERK_JWT_KEY``), or by setting
the same names here, e.g. ``CLERK_AUTHORIZED_PARTIES = ["https://app.example.com"]``.
Try it without Clerk: ``clerkguard dev-issuer`` prints the variables of a
local issuer and mints tokens.

Run it under any WSGI or ASGI server, from the repository root::

    gunicorn examples.django_project.wsgi:application --bind 127.0.0.1:8000
    uvicorn examples.django_project.asgi:application --port 8000
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Kept on: views without @require_auth keep Django's CSRF protection. Guarded
    # views are csrf_exempt (a Bearer request needs no CSRF token; cookie requests
    # get clerkguard's own cookie-path checks), as DRF's APIView is.
    "django.middleware.csrf.CsrfViewMiddleware",
    # request.auth (lazy) and `await request.aauth()` on every request; never refuses.
    "clerkguard.django.clerk_middleware",
]

ROOT_URLCONF = f"{__package__}.urls"  # examples.django_project.urls from the repository root
DATABASES: dict[str, dict[str, str]] = {}  # this API keeps no data
USE_TZ = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["clerkguard.drf.ClerkAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["clerkguard.drf.IsClerkAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # clerkguard's body ({"error", "reason", "detail"}) for DRF's own 401/403 answers too.
    "EXCEPTION_HANDLER": "clerkguard.drf.exception_handler",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"clerkguard": {"handlers": ["console"], "level": "WARNING"}},
}
