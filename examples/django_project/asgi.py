"""ASGI entry point: ``uvicorn examples.django_project.asgi:application``."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

# The package name as imported (``examples.django_project`` from the repository root,
# ``django_project`` from inside ``examples/``).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{__package__}.settings")

application = get_asgi_application()
app = application
