"""The shared table's routes on Quart, through ``app.test_app()`` + ``test_client()``.

The harness owns one event loop and runs Quart's startup (``before_serving``:
the async key refresher starts) once and its shutdown in :meth:`close`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import quart

from clerkguard import ClerkAuth
from clerkguard.quart import ClerkGuard, current_auth, get_auth, require_auth
from clerkguard.rules import has_permission

from .harness import (
    PERMISSION,
    Result,
    async_allow_user,
    is_request_of,
    raising_authorize,
    truthy_authorize,
)


def build_app(auth: ClerkAuth) -> quart.Quart:
    """A Quart app serving every route of the harness contract."""
    app = quart.Quart(__name__)
    ClerkGuard(app, auth=auth)

    async def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/protected")
    @require_auth
    async def protected() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "org_role": current_auth.org_role}

    for path, options in {
        "/admin": {"role": "admin"},
        "/perm": {"authorize": has_permission(PERMISSION)},
        "/async-authorize": {"authorize": async_allow_user},
        "/authorize-raises": {"authorize": raising_authorize},
        "/truthy": {"authorize": truthy_authorize},
        "/request-arg": {"authorize": is_request_of(quart.Request)},
    }.items():
        app.add_url_rule(path, path, require_auth(**options)(me))

    @app.get("/optional")
    @require_auth(optional=True)
    async def optional() -> dict[str, Any]:
        session = get_auth()
        return {"user_id": session.user_id if session else None}

    @app.route("/preflight", methods=["GET", "OPTIONS"])
    @require_auth
    async def preflight() -> Any:
        if quart.request.method == "OPTIONS":
            return "", 204
        return await me()

    @app.get("/sync")
    @require_auth
    def sync_view() -> dict[str, Any]:  # Quart runs it in a worker thread
        return {"user_id": current_auth.user_id, "kind": "sync"}

    @app.get("/async")
    @require_auth
    async def async_view() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "kind": "async"}

    return app


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
    return QuartHarness(build_app(auth))
