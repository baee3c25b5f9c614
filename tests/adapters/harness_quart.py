"""The shared table on Quart: ``examples/quart_app.py``'s app through ``app.test_app()`` + ``test_client()``.

The harness owns one event loop and runs Quart's startup (``before_serving``:
the async key refresher starts) once and its shutdown in :meth:`close`.
"""

from __future__ import annotations

import asyncio
from types import ModuleType

import quart
from werkzeug.datastructures import Headers

from clerkguard import ClerkAuth

from . import harness
from .harness import Result


def load_example() -> ModuleType:
    """``examples/quart_app.py``, whose ``create_app(auth)`` serves the table's routes."""
    return harness.load_example("quart_app")


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
        headers: harness.Headers | None = None,
        cookies: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Result:
        """Send one request through Quart's test client (repeated header lines kept)."""
        sent = Headers(harness.header_list(headers, cookies))
        return self.loop.run_until_complete(self._request(method, path, sent, body))

    async def _request(self, method: str, path: str, headers: Headers, body: bytes | None) -> Result:
        response = await self.client.open(path, method=method, headers=headers, data=body)
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
    return QuartHarness(example.create_app(auth, webhook_secret=list(harness.WEBHOOK_SECRETS)))
