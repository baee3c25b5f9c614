"""The shared table on Litestar: ``examples/litestar_app.py``'s app behind ``TestClient``."""

from __future__ import annotations

from types import ModuleType

from litestar import Litestar
from litestar.testing import TestClient

from clerkguard import ClerkAuth

from . import harness
from .harness import Result


def load_example() -> ModuleType:
    """``examples/litestar_app.py``, whose ``create_app(auth)`` serves the table's routes."""
    return harness.load_example("litestar_app")


def build_app(auth: ClerkAuth) -> Litestar:
    """The example's app (the table's routes and its own) on ``auth``."""
    app: Litestar = load_example().create_app(auth, webhook_secret=list(harness.WEBHOOK_SECRETS))
    return app


class LitestarHarness:
    """The app behind one ``TestClient`` whose lifespan spans the harness."""

    name = "litestar"

    def __init__(self, auth: ClerkAuth) -> None:
        self.client = TestClient(build_app(auth))
        self.client.__enter__()  # runs the plugin's startup (key warm-up, refresher)

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
            method, path, headers=harness.header_list(headers, cookies), content=body
        )
        return Result(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            json=response.json() if response.content else None,
        )

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def make_harness(auth: ClerkAuth) -> LitestarHarness:
    """The Litestar harness of the shared table."""
    return LitestarHarness(auth)
