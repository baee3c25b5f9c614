"""The shared-table app for Litestar: decorator below ``@get``, ClerkPlugin, TestClient."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response, get, route
from litestar.testing import TestClient

from clerkguard import ClerkAuth
from clerkguard.litestar import ClerkPlugin, require_auth
from clerkguard.rules import has_permission

from .harness import (
    PERMISSION,
    Result,
    async_allow_user,
    is_request_of,
    raising_authorize,
    truthy_authorize,
)

AnyRequest = Request[Any, Any, Any]


def user_of(request: AnyRequest) -> dict[str, Any]:
    return {"user_id": request.auth.user_id}


@get("/protected")
@require_auth
async def protected(request: AnyRequest) -> dict[str, Any]:
    return {"user_id": request.auth.user_id, "org_role": request.auth.org_role}


@get("/admin")
@require_auth(role="admin")
async def admin(request: AnyRequest) -> dict[str, Any]:
    return user_of(request)


@get("/perm")
@require_auth(authorize=has_permission(PERMISSION))
async def perm(request: AnyRequest) -> dict[str, Any]:
    return user_of(request)


@get("/async-authorize")
@require_auth(authorize=async_allow_user)
async def async_authorize(request: AnyRequest) -> dict[str, Any]:
    return user_of(request)


@get("/authorize-raises")
@require_auth(authorize=raising_authorize)
async def authorize_raises(request: AnyRequest) -> dict[str, Any]:
    return user_of(request)


@get("/truthy")
@require_auth(authorize=truthy_authorize)
async def truthy(request: AnyRequest) -> dict[str, Any]:
    return user_of(request)


@get("/request-arg")
@require_auth(authorize=is_request_of(Request))
async def request_arg(request: AnyRequest) -> dict[str, Any]:
    return user_of(request)


@get("/optional")
@require_auth(optional=True)
async def optional(request: AnyRequest) -> dict[str, Any]:
    session = request.auth
    return {"user_id": session.user_id if session is not None else None}


@route("/preflight", http_method=["GET", "OPTIONS"])
@require_auth
async def preflight(request: AnyRequest) -> Response[Any]:
    if request.method == "OPTIONS":
        return Response(content=None, status_code=204)
    return Response(content=user_of(request))


@get("/sync", sync_to_thread=True)
@require_auth
def sync_handler(request: AnyRequest) -> dict[str, Any]:
    return {"user_id": request.auth.user_id, "kind": "sync"}


@get("/async")
@require_auth
async def async_handler(request: AnyRequest) -> dict[str, Any]:
    return {"user_id": request.auth.user_id, "kind": "async"}


HANDLERS = [
    protected,
    admin,
    perm,
    async_authorize,
    authorize_raises,
    truthy,
    request_arg,
    optional,
    preflight,
    sync_handler,
    async_handler,
]


def build_app(auth: ClerkAuth) -> Litestar:
    """The table's routes on a Litestar app configured through :class:`ClerkPlugin`."""
    return Litestar(route_handlers=HANDLERS, plugins=[ClerkPlugin(auth)], openapi_config=None)


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
