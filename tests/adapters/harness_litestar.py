"""The shared table on Litestar: ``examples/litestar_app.py``'s app behind ``TestClient``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from litestar import Litestar
from litestar.testing import TestClient

from clerkguard import ClerkAuth

from .harness import Result

#: Where the example app lives (``examples`` is not a package).
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "litestar_app.py"


def load_example() -> ModuleType:
    """Import ``examples/litestar_app.py`` once; its ``create_app(auth)`` serves the table's routes."""
    name = "_clerkguard_example_litestar"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        assert spec is not None
        assert spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)  # Litestar resolves hints through it
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def build_app(auth: ClerkAuth) -> Litestar:
    """The example's app (the table's routes and its own) on ``auth``."""
    app: Litestar = load_example().create_app(auth)
    return app


def cookie_header(cookies: dict[str, str] | None) -> dict[str, str]:
    """A ``Cookie`` header (httpx deprecates per-request ``cookies=``)."""
    if not cookies:
        return {}
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


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
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Result:
        response = self.client.request(method, path, headers={**(headers or {}), **cookie_header(cookies)})
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
