"""The shared table on Flask: ``examples/flask_app.py``'s app through ``app.test_client()``."""

from __future__ import annotations

from types import ModuleType

import flask

from clerkguard import ClerkAuth

from . import harness
from .harness import Result


def load_example() -> ModuleType:
    """``examples/flask_app.py``, whose ``create_app(auth)`` serves the table's routes."""
    return harness.load_example("flask_app")


example = load_example()


class FlaskHarness:
    """:class:`~tests.adapters.harness.Harness` for Flask."""

    name = "flask"

    def __init__(self, app: flask.Flask) -> None:
        self.app = app
        self.client = app.test_client(use_cookies=False)  # our Cookie header, sent as is

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: harness.Headers | None = None,
        cookies: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Result:
        """One request through Flask's test client (werkzeug folds repeated headers, as gunicorn does)."""
        response = self.client.open(
            path, method=method, headers=harness.header_list(headers, cookies), data=body
        )
        return Result(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            json=response.get_json(silent=True),
        )


def make_harness(auth: ClerkAuth) -> FlaskHarness:
    """The Flask harness on ``auth``."""
    return FlaskHarness(example.create_app(auth, webhook_secret=list(harness.WEBHOOK_SECRETS)))
