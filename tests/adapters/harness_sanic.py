"""The shared-table app for Sanic: ``@require_auth`` below the route, ClerkGuard, ASGI client.

Sanic's ASGI test client runs the server listeners around every request, so
this harness also proves that repeating them neither breaks verification nor
refetches keys.
"""

from __future__ import annotations

import asyncio
import itertools
import json as jsonlib
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, empty, json
from sanic_testing.testing import SanicASGITestClient

from clerkguard import ClerkAuth
from clerkguard.rules import has_permission
from clerkguard.sanic import ClerkGuard, require_auth

from .harness import (
    PERMISSION,
    Result,
    async_allow_user,
    is_request_of,
    raising_authorize,
    truthy_authorize,
)

_names = itertools.count()


def user_of(request: Request) -> HTTPResponse:
    return json({"user_id": request.ctx.auth.user_id})


def build_app(auth: ClerkAuth, name: str | None = None) -> Sanic[Any, Any]:
    """The table's routes on a fresh Sanic app (Sanic app names are process-unique)."""
    Sanic.test_mode = True  # allows many apps per process
    app: Sanic[Any, Any] = Sanic(name or f"clerkguard_table_{next(_names)}")
    ClerkGuard(app, auth=auth)

    @app.get("/protected")
    @require_auth
    async def protected(request: Request) -> HTTPResponse:
        return json({"user_id": request.ctx.auth.user_id, "org_role": request.ctx.auth.org_role})

    @app.get("/admin")
    @require_auth(role="admin")
    async def admin(request: Request) -> HTTPResponse:
        return user_of(request)

    @app.get("/perm")
    @require_auth(authorize=has_permission(PERMISSION))
    async def perm(request: Request) -> HTTPResponse:
        return user_of(request)

    @app.get("/async-authorize")
    @require_auth(authorize=async_allow_user)
    async def async_authorize(request: Request) -> HTTPResponse:
        return user_of(request)

    @app.get("/authorize-raises")
    @require_auth(authorize=raising_authorize)
    async def authorize_raises(request: Request) -> HTTPResponse:
        return user_of(request)

    @app.get("/truthy")
    @require_auth(authorize=truthy_authorize)
    async def truthy(request: Request) -> HTTPResponse:
        return user_of(request)

    @app.get("/request-arg")
    @require_auth(authorize=is_request_of(Request))
    async def request_arg(request: Request) -> HTTPResponse:
        return user_of(request)

    @app.get("/optional")
    @require_auth(optional=True)
    async def optional(request: Request) -> HTTPResponse:
        session = request.ctx.auth
        return json({"user_id": session.user_id if session is not None else None})

    @app.route("/preflight", methods=["GET", "OPTIONS"])
    @require_auth
    async def preflight(request: Request) -> HTTPResponse:
        if request.method == "OPTIONS":
            return empty(status=204)
        return user_of(request)

    @app.get("/sync")
    @require_auth
    def sync_handler(request: Request) -> HTTPResponse:
        return json({"user_id": request.ctx.auth.user_id, "kind": "sync"})

    @app.get("/async")
    @require_auth
    async def async_handler(request: Request) -> HTTPResponse:
        return json({"user_id": request.ctx.auth.user_id, "kind": "async"})

    return app


def cookie_header(cookies: dict[str, str] | None) -> dict[str, str]:
    """A ``Cookie`` header (httpx deprecates per-request ``cookies=``)."""
    if not cookies:
        return {}
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


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
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Result:
        all_headers = {**(headers or {}), **cookie_header(cookies)}
        _, response = self.loop.run_until_complete(
            self.client.request(method, path, headers=all_headers, gather_request=False)
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
