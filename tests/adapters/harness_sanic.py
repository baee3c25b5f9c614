"""The shared table on Sanic: ``examples/sanic_app.py``'s app behind Sanic's ASGI client.

Sanic's ASGI test client runs the server listeners around every request, so
this harness also proves that repeating them neither breaks verification nor
refetches keys.
"""

from __future__ import annotations

import asyncio
import itertools
import json as jsonlib
from types import ModuleType
from typing import Any

from sanic import Sanic
from sanic_testing.testing import SanicASGITestClient

from clerkguard import ClerkAuth

from . import harness
from .harness import Result

_names = itertools.count()


def load_example() -> ModuleType:
    """``examples/sanic_app.py``, whose ``create_app(auth)`` serves the table's routes."""
    return harness.load_example("sanic_app")


def build_app(auth: ClerkAuth, name: str | None = None) -> Sanic[Any, Any]:
    """The example's app on ``auth``, under a fresh name (Sanic app names are process-unique)."""
    Sanic.test_mode = True  # allows many apps per process
    app: Sanic[Any, Any] = load_example().create_app(
        auth, name or f"clerkguard_table_{next(_names)}", webhook_secret=list(harness.WEBHOOK_SECRETS)
    )
    return app


class SanicHarness:
    """The app behind Sanic's ASGI test client, driven on one private event loop."""

    name = "sanic"

    def __init__(self, auth: ClerkAuth) -> None:
        self.app = build_app(auth)
        self.client = SanicASGITestClient(self.app)
        self.loop = asyncio.new_event_loop()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: harness.Headers | None = None,
        cookies: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Result:
        all_headers = harness.header_list(headers, cookies)
        _, response = self.loop.run_until_complete(
            self.client.request(method, path, headers=all_headers, content=body, gather_request=False)
        )
        return Result(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            json=jsonlib.loads(response.content) if response.content else None,
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def make_harness(auth: ClerkAuth) -> SanicHarness:
    """The Sanic harness of the shared table."""
    return SanicHarness(auth)
