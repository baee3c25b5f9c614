"""Shared test helpers.

Fixtures `clerk_issuer`, `clerk_auth` and `clerk_token` come from clerkguard's pytest plugin.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Django's settings, once per process: the example project's (``examples/django_project``).

    Django settings are process-global, and the Django harnesses, the Django
    docs samples and any other test may run first, so they are set here, before
    any test; tests vary them with ``override_settings`` only. Configured from
    the module's values, not through ``DJANGO_SETTINGS_MODULE``, which servers
    started by tests would inherit.
    """
    if importlib.util.find_spec("django") is None:
        return
    import django
    from django.conf import settings

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # ``examples.django_project`` is imported by name
    if not settings.configured:
        project = importlib.import_module("examples.django_project.settings")
        settings.configure(**{name: getattr(project, name) for name in dir(project) if name.isupper()})
    django.setup()


@pytest.fixture(scope="session")
def clerk_js_fixture() -> dict[str, Any]:
    """A real Clerk session token and its JWKS (clerk/javascript fixtures, MIT)."""
    data: dict[str, Any] = json.loads((FIXTURES / "clerk_js_fixtures.json").read_text())
    return data
