"""The shared table on Quart: ``examples/quart_app.py``'s app through ``app.test_app()`` + ``test_client()``.

The harness owns one event loop and runs Quart's startup (``before_serving``:
the async key refresher starts) once and its shutdown in :meth:`close`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

import quart

from clerkguard import ClerkAuth

from .harness import Result

#: Where the example app lives (``examples`` is not a package).
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quart_app.py"


def load_example() -> ModuleType:
    """Import ``examples/quart_app.py``, whose ``create_app(auth)`` serves the table's routes.

    Its module-level ``app`` configures itself from ``CLERK_*``: a placeholder key
    source lets that import succeed (that app is never served nor asked to verify).
    """
    spec = importlib.util.spec_from_file_location("_clerkguard_example_quart", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Quart resolves the app's root path through it
    placeholder = {
        "CLERK_JWKS_URI": "http://127.0.0.1:9/jwks.json",
        "CLERK_ISSUER": "https://placeholder.invalid",
    }
    with mock.patch.dict(os.environ, placeholder):
        spec.loader.exec_module(module)
    return module


example = load_example()


class QuartHarness:
    """:class:`~tests.adapters.harness.Harness` for Quart (one private event loop)."""

    name = "quart"

    def __init__(self, app: quart.Quart) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.test_app = app.test_app()
        self.loop.run_until_complete(self.test_app.startup())
        self.client = self.test_app.test_client()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Result:
        """Send one request through Quart's test client."""
        sent = dict(headers or {})
        if cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        return self.loop.run_until_complete(self._request(method, path, sent))

    async def _request(self, method: str, path: str, headers: dict[str, str]) -> Result:
        response = await self.client.open(path, method=method, headers=headers)
        body = await response.get_data()
        return Result(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            json=await response.get_json(silent=True) if body else None,
        )

    def close(self) -> None:
        """Run Quart's shutdown (stops the refresher) and close the loop."""
        try:
            self.loop.run_until_complete(self.test_app.shutdown())
        finally:
            self.loop.close()


def make_harness(auth: ClerkAuth) -> QuartHarness:
    """The Quart harness on ``auth``."""
    return QuartHarness(example.create_app(auth))
