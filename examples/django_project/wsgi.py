"""WSGI entry point: ``gunicorn examples.django_project.wsgi:application``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

# The package name as imported (``examples.django_project`` from the repository root,
# ``django_project`` from inside ``examples/``).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{__package__}.settings")

application = get_wsgi_application()
app = application  # the name `clerkguard demo` and most servers' docs use
