"""The shared table on Django's async views: ``/async-views/...`` through ``django.test.AsyncClient``.

The whole request runs through Django's ASGI handler on one private event
loop, so the guard verifies with ``averify`` on that loop (and reads headers
from the ASGI scope).
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.test import AsyncClient
from django.test.client import FakePayload
from django.test.utils import override_settings

from clerkguard import ClerkAuth

from . import harness
from .harness import Result
from .harness_django import result_of


class DjangoAsyncHarness:
    """:class:`~tests.adapters.harness.Harness` for the async views."""

    name = "django_async"
    prefix = "/async-views"

    def __init__(self, auth: ClerkAuth) -> None:
        self.auth = auth
        self.client = AsyncClient()
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
        """One request through Django's async test client: an ASGI scope, one entry per header line."""
        lines = [(b"host", b"testserver")] + [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in harness.header_list(headers, cookies)
        ]
        scope: dict[str, Any] = {
            "method": method,
            "path": self.prefix + path,
            "query_string": "",
            "headers": lines,
        }
        if body is not None:  # what AsyncRequestFactory.generic does with a body
            lines.append((b"content-length", str(len(body)).encode("ascii")))
            scope["_body_file"] = FakePayload(body)
        secrets = list(harness.WEBHOOK_SECRETS)
        with override_settings(CLERK_AUTH=self.auth, CLERK_WEBHOOK_SIGNING_SECRET=secrets):
            response = self.loop.run_until_complete(self.client.request(**scope))
        return result_of(response)

    def close(self) -> None:
        """Stop what the guard started on this loop (the key refresher task), then the loop."""
        pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(_finish(pending))
        self.loop.close()


async def _finish(tasks: list[asyncio.Task[object]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def make_harness(auth: ClerkAuth) -> DjangoAsyncHarness:
    """The Django (async views) harness on ``auth``."""
    return DjangoAsyncHarness(auth)
