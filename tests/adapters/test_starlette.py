"""Starlette: endpoint shapes, websockets, the AuthenticationMiddleware backend, ClerkGuard.

The shared table (``test_table.py``) pins the answers; this file pins what is
Starlette's own: ``HTTPEndpoint`` methods (sync and async), websocket
endpoints refused before ``accept()``, ``request.user``/``@requires`` through
:class:`~clerkguard.starlette.ClerkAuthBackend`, the lifespan kept in place
and the misordered-decorator refusal.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from clerkguard import ClerkAuth, ConfigurationError, MissingDependencyError, Session
from clerkguard.starlette import (
    ClerkAuthBackend,
    ClerkGuard,
    ClerkUser,
    StarletteAdapter,
    misordered_routes,
    on_auth_error,
    require_auth,
)
from clerkguard.testing import LocalIssuer

from .harness_starlette import build_app

Mint = Callable[..., str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["reason"] == reason
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.fixture
def example(clerk_auth: ClerkAuth) -> Iterator[TestClient]:
    """``examples/starlette_app.py`` behind a started TestClient."""
    with TestClient(build_app(clerk_auth)) as client:
        yield client


# -- endpoint shapes -----------------------------------------------------------------------------
def test_http_endpoint_methods_sync_and_async(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    seen: list[Any] = []

    class Items(HTTPEndpoint):
        @require_auth
        def get(self, request: Request) -> JSONResponse:
            seen.append(request.auth)
            return JSONResponse({"user_id": request.auth.user_id, "kind": "sync"})

        @require_auth(role="admin")
        async def post(self, request: Request) -> JSONResponse:
            return JSONResponse({"user_id": request.auth.user_id, "kind": "async"})

    assert not inspect.iscoroutinefunction(Items.get)  # Starlette runs it in the threadpool
    assert inspect.iscoroutinefunction(Items.post)
    app = Starlette(routes=[Route("/items", Items)])
    ClerkGuard(app, clerk_auth)
    admin = clerk_token(user_id="user_admin", org_role="admin")
    with TestClient(app) as client:
        assert client.get("/items", headers=bearer(admin)).json() == {"user_id": "user_admin", "kind": "sync"}
        assert isinstance(seen[0], Session)
        assert client.post("/items", headers=bearer(admin)).json()["kind"] == "async"
        assert_error(client.post("/items", headers=bearer(clerk_token())), 403, "authorization-denied")
        assert_error(client.get("/items"), 401, "token-missing")
        options = client.options("/items")
    # OPTIONS is not a method of this endpoint: Starlette's own 405 stands.
    assert options.status_code == 405


def test_options_gets_204_with_allow_and_never_runs_the_endpoint(clerk_auth: ClerkAuth) -> None:
    calls: list[str] = []

    @require_auth
    async def both(request: Request) -> JSONResponse:
        calls.append(request.method)
        return JSONResponse({})

    class Endpoint(HTTPEndpoint):
        @require_auth
        async def get(self, request: Request) -> JSONResponse:
            return JSONResponse({})

        @require_auth
        async def options(self, request: Request) -> JSONResponse:
            calls.append("endpoint options")
            return JSONResponse({})

    app = Starlette(routes=[Route("/f", both, methods=["GET", "POST", "OPTIONS"]), Route("/e", Endpoint)])
    ClerkGuard(app, clerk_auth)
    with TestClient(app) as client:
        f = client.options("/f", headers=bearer("forged.token.value"))
        e = client.options("/e")
    assert (f.status_code, f.content, f.headers["allow"]) == (204, b"", "GET, HEAD, POST, OPTIONS")
    assert (e.status_code, e.headers["allow"]) == (204, "GET, HEAD, OPTIONS")
    assert calls == []


def test_decorator_refuses_classes_and_sync_websockets() -> None:
    with pytest.raises(TypeError, match="methods"):
        require_auth(HTTPEndpoint)

    def sync_ws(websocket: WebSocket) -> None: ...

    with pytest.raises(TypeError, match="websocket"):
        require_auth(sync_ws)


def test_decorator_keeps_kind_name_and_signature() -> None:
    async def handler(request: Request) -> JSONResponse:
        """Doc."""
        return JSONResponse({})

    wrapped = require_auth(role="admin")(handler)
    assert inspect.iscoroutinefunction(wrapped)
    assert (wrapped.__name__, wrapped.__doc__) == ("handler", "Doc.")
    assert inspect.signature(wrapped) == inspect.signature(handler)


def test_decorator_with_its_own_auth_needs_no_clerk_guard(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    @require_auth(auth=clerk_auth)
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"user_id": request.auth.user_id})

    with TestClient(Starlette(routes=[Route("/me", me)])) as client:
        assert client.get("/me", headers=bearer(clerk_token(user_id="user_own"))).json() == {
            "user_id": "user_own"
        }
        assert_error(client.get("/me"), 401, "token-missing")


def test_no_clerk_auth_anywhere_is_a_configuration_error() -> None:
    @require_auth
    async def me(request: Request) -> JSONResponse:
        return JSONResponse({})

    with pytest.raises(ConfigurationError, match="ClerkGuard"):
        TestClient(Starlette(routes=[Route("/me", me)])).get("/me", headers=bearer("a.b.c"))


def test_adapter_reads_every_header_line_from_the_raw_scope() -> None:
    scope = {
        "type": "http",
        "method": "get",
        "headers": [(b"cookie", b"a=1"), (b"authorization", b"Bearer x"), (b"cookie", b"b=2")],
    }
    request = Request(scope)
    adapter = StarletteAdapter()
    assert adapter.header_values(request, "cookie") == ["a=1", "b=2"]
    assert adapter.header_values(request, "origin") == []
    assert adapter.header(request, "Authorization") == "Bearer x"
    assert adapter.method(request) == "GET"
    assert not adapter.is_websocket(request)


# -- websockets -------------------------------------------------------------------------------------------
def test_websocket_refused_before_accept_with_the_http_answer(example: TestClient, clerk_token: Mint) -> None:
    with example.websocket_connect("/ws", headers=bearer(clerk_token(user_id="user_ws"))) as ws:
        assert ws.receive_json() == {"user_id": "user_ws"}
    with pytest.raises(WebSocketDenialResponse) as denied:
        with example.websocket_connect("/ws", headers=bearer(clerk_token(org_role="x", expires_in=-100))):
            pass
    assert denied.value.status_code == 401
    assert denied.value.json() == {
        "error": "invalid_token",
        "reason": "token-expired",
        "detail": "the token has expired",
    }
    assert 'error="invalid_token"' in denied.value.headers["www-authenticate"]


async def test_websocket_without_the_denial_extension_is_closed_with_1008(clerk_auth: ClerkAuth) -> None:
    app = build_app(clerk_auth)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "scheme": "ws",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"authorization", b"Bearer not-a-jwt")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "subprotocols": [],
    }
    await app(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "token-malformed"}]


# -- the AuthenticationMiddleware backend -----------------------------------------------------------------
def test_backend_fills_request_user_and_scopes(example: TestClient, clerk_token: Mint) -> None:
    token = clerk_token(user_id="user_b", org_role="admin", permissions=["org:reports:read"])
    me = example.get("/users/me", headers=bearer(token))
    assert me.json() == {
        "user_id": "user_b",
        "scopes": ["authenticated", "org:admin", "org:reports:read"],
    }
    assert example.get("/users/whoami").json() == {"user_id": None}  # no token: anonymous
    assert example.get("/users/me").status_code == 403  # Starlette's @requires decides for anonymous


def test_backend_answers_a_bad_token_with_the_same_401(example: TestClient, clerk_token: Mint) -> None:
    expired = example.get("/users/whoami", headers=bearer(clerk_token(issued_at=0, expires_in=60)))
    assert_error(expired, 401, "token-expired")
    cookie = example.get("/users/whoami", headers={"Cookie": "__session=not-a-jwt; __client_uat=1"})
    assert_error(cookie, 401, "token-malformed")


def test_backend_treats_a_signed_out_browser_as_anonymous(example: TestClient, clerk_token: Mint) -> None:
    # A leftover session cookie without Clerk's __client_uat: signed out, not an error.
    stale = example.get("/users/whoami", headers={"Cookie": f"__session={clerk_token()}"})
    assert (stale.status_code, stale.json()) == (200, {"user_id": None})
    # The decorator, which requires a session, refuses the same request.
    assert_error(
        example.get("/protected", headers={"Cookie": f"__session={clerk_token()}"}),
        401,
        ("session-token-without-client-uat"),
    )


def test_backend_refuses_endpoint_options() -> None:
    with pytest.raises(TypeError, match="role"):
        ClerkAuthBackend(role="admin")
    with pytest.raises(TypeError, match="optional"):
        ClerkAuthBackend(optional=False)


def test_backend_user_is_a_starlette_user(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    @requires("authenticated")
    async def me(request: Request) -> JSONResponse:
        user = request.user
        assert isinstance(user, ClerkUser)
        return JSONResponse({"name": user.display_name, "id": user.identity, "session": user.session.user_id})

    app = Starlette(
        routes=[Route("/me", me)],
        middleware=[
            Middleware(
                AuthenticationMiddleware, backend=ClerkAuthBackend(auth=clerk_auth), on_error=on_auth_error
            )
        ],
    )
    with TestClient(app) as client:
        body = client.get("/me", headers=bearer(clerk_token(user_id="user_u"))).json()
    assert body == {"name": "user_u", "id": "user_u", "session": "user_u"}


# -- ClerkGuard --------------------------------------------------------------------------------------------
def test_clerk_guard_keeps_the_apps_own_lifespan_and_warms_up(clerk_issuer: LocalIssuer) -> None:
    auth = clerk_issuer.auth()
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"db": "connected"}
        events.append("shutdown")

    @require_auth
    async def state(request: Request) -> JSONResponse:
        return JSONResponse({"db": request.state.db, "user_id": request.auth.user_id})

    app = Starlette(routes=[Route("/state", state)], lifespan=lifespan)
    ClerkGuard(app, auth)
    with TestClient(app) as client:
        assert auth.stats.fetches == 1  # warmed up before the first request
        response = client.get("/state", headers=bearer(clerk_issuer.mint(user_id="user_l")))
        assert response.json() == {"db": "connected", "user_id": "user_l"}
    assert events == ["startup", "shutdown"]
    assert clerk_issuer.request_count == 1


def test_test_client_without_lifespan_fetches_lazily_once(clerk_issuer: LocalIssuer) -> None:
    auth = clerk_issuer.auth()

    @require_auth
    async def a(request: Request) -> JSONResponse:
        return JSONResponse({"user_id": request.auth.user_id})

    app = Starlette(routes=[Route("/a", a)])
    ClerkGuard(app, auth)
    client = TestClient(app)  # outside `with`: no lifespan
    try:
        for i in range(5):
            response = client.get("/a", headers=bearer(clerk_issuer.mint(user_id=f"user_{i}")))
            assert response.json() == {"user_id": f"user_{i}"}
        assert clerk_issuer.request_count == 1
    finally:
        auth.close()


def test_endpoint_wrapped_after_its_route_is_refused(clerk_auth: ClerkAuth) -> None:
    async def secret(request: Request) -> JSONResponse:
        return JSONResponse({"secret": True})

    app = Starlette(routes=[Route("/secret", secret)])
    require_auth(secret)  # too late: the route holds the bare function
    assert misordered_routes(app) == ["/secret"]
    with pytest.raises(ConfigurationError, match="/secret"):
        ClerkGuard(app, clerk_auth)


def test_import_without_starlette_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "clerkguard.starlette")
    monkeypatch.setitem(sys.modules, "starlette", None)  # makes `import starlette` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "clerkguard\[starlette\]"') as info:
        importlib.import_module("clerkguard.starlette")
    assert isinstance(info.value, ImportError)


def test_websocket_route_is_recognised_by_name_or_annotation(
    clerk_auth: ClerkAuth, clerk_token: Mint
) -> None:
    @require_auth
    async def by_annotation(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"user_id": ws.auth.user_id})
        await ws.close()

    app = Starlette(routes=[WebSocketRoute("/w", by_annotation)])
    ClerkGuard(app, clerk_auth)
    with TestClient(app) as client:
        with client.websocket_connect("/w", headers=bearer(clerk_token(user_id="user_w"))) as ws:
            assert ws.receive_json() == {"user_id": "user_w"}
        with pytest.raises(WebSocketDenialResponse):
            with client.websocket_connect("/w"):
                pass
