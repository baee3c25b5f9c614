"""The shared table on Flask: ``examples/flask_app.py``'s app through ``app.test_client()``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

import flask

from clerkguard import ClerkAuth

from .harness import Result

#: Where the example app lives (``examples`` is not a package).
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_app.py"


def load_example() -> ModuleType:
    """Import ``examples/flask_app.py``, whose ``create_app(auth)`` serves the table's routes.

    Its module-level ``app`` configures itself from ``CLERK_*``: a placeholder key
    source lets that import succeed (that app is never served nor asked to verify).
    """
    spec = importlib.util.spec_from_file_location("_clerkguard_example_flask", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Flask resolves the app's root path through it
    placeholder = {
        "CLERK_JWKS_URI": "http://127.0.0.1:9/jwks.json",
        "CLERK_ISSUER": "https://placeholder.invalid",
    }
    with mock.patch.dict(os.environ, placeholder):
        spec.loader.exec_module(module)
    return module


example = load_example()


class FlaskHarness:
    """:class:`~tests.adapters.harness.Harness` for Flask."""

    name = "flask"

    def __init__(self, app: flask.Flask) -> None:
        self.app = app
        self.client = app.test_client()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Result:
        """Send one request through Flask's test client."""
        self.client._cookies.clear()  # no state between requests
        for name, value in (cookies or {}).items():
            self.client.set_cookie(name, value)
        response = self.client.open(path, method=method, headers=headers or {})
        return Result(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            json=response.get_json(silent=True),
        )


def make_harness(auth: ClerkAuth) -> FlaskHarness:
    """The Flask harness on ``auth``."""
    return FlaskHarness(example.create_app(auth))
