"""The shared table on Starlette: ``examples/starlette_app.py``'s app behind ``TestClient``."""

from __future__ import annotations

from types import ModuleType

from starlette.applications import Starlette
from starlette.testclient import TestClient

from clerkguard import ClerkAuth

from . import harness
from .harness import Result


def load_example() -> ModuleType:
    """``examples/starlette_app.py``, whose ``create_app(auth)`` serves the table's routes."""
    return harness.load_example("starlette_app")


def build_app(auth: ClerkAuth) -> Starlette:
    """The example's app (the table's routes and its own) on ``auth``."""
    app: Starlette = load_example().create_app(auth, webhook_secret=list(harness.WEBHOOK_SECRETS))
    return app


class StarletteHarness:
    """An ASGI app behind one ``TestClient`` whose lifespan spans the harness.

    ``prefix`` is prepended to the table's paths (the FastAPI example serves
    the dependency form of the table under ``/depends``).
    """

    name = "starlette"

    def __init__(self, app: Starlette, prefix: str = "") -> None:
        self.prefix = prefix
        self.client = TestClient(app)
        self.client.__enter__()  # runs ClerkGuard's lifespan (key warm-up, refresher)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: harness.Headers | None = None,
        cookies: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Result:
        response = self.client.request(
            method, self.prefix + path, headers=harness.header_list(headers, cookies), content=body
        )
        return Result(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            json=response.json() if response.content else None,
        )

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def make_harness(auth: ClerkAuth) -> StarletteHarness:
    """The Starlette harness of the shared table."""
    return StarletteHarness(build_app(auth))
