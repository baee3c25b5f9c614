"""FastAPI: the dependency, the decorator, ClerkGuard, OpenAPI, websockets, the event loop.

The shared table (``test_table.py``) pins the answers of both forms; this
file pins what is FastAPI's own: the signature FastAPI reads, the OpenAPI
security scheme on exactly the guarded operations, the exception handler and
its overrides, the lifespan kept in place, decorator-order refusal,
websockets, and that a sync endpoint's cold key fetch leaves the event loop
free.

No ``from __future__ import annotations`` here: the endpoints below name
local dependencies in ``Annotated[...]``, which FastAPI must see evaluated.
"""

import asyncio
import functools
import importlib
import inspect
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection
from starlette.testclient import WebSocketDenialResponse

from clerkguard import ClerkAuth, ConfigurationError, MissingDependencyError, Session
from clerkguard.fastapi import ClerkBearer, ClerkGuard, require_auth, requires_auth
from clerkguard.testing import Fault, LocalIssuer

from .harness_fastapi import build_app

Mint = Callable[..., str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, reason: str) -> None:
    """clerkguard's error answer: status, JSON body (not FastAPI's ``detail``), challenge."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["reason"] == reason
    assert set(response.json()) == {"error", "reason", "detail"}  # not FastAPI's {"detail": ...}
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.fixture
def example(clerk_auth: ClerkAuth) -> Iterator[TestClient]:
    """``examples/fastapi_app.py`` behind a started TestClient."""
    with TestClient(build_app(clerk_auth)) as client:
        yield client


# -- the dependency ------------------------------------------------------------------------------
def test_requires_auth_is_a_security_scheme_dependency_yielding_the_session(
    clerk_auth: ClerkAuth, clerk_token: Mint
) -> None:
    dependency = requires_auth(role="org:admin")
    assert isinstance(dependency, ClerkBearer)
    assert inspect.iscoroutinefunction(type(dependency).__call__)  # verifies on the loop
    app = FastAPI()
    ClerkGuard(app, clerk_auth)

    @app.get("/admin")
    def admin(session: Annotated[Session, Depends(dependency)], request: Request) -> dict[str, Any]:
        assert request.auth is session  # also at request.auth
        return {"user_id": session.user_id, "role": session.org_role}

    with TestClient(app) as client:
        ok = client.get("/admin", headers=bearer(clerk_token(user_id="user_a", org_role="admin")))
        assert ok.json() == {"user_id": "user_a", "role": "org:admin"}
        member = client.get("/admin", headers=bearer(clerk_token(org_role="member")))
        assert_error(member, 403, "authorization-denied")
        assert_error(client.get("/admin"), 401, "token-missing")


def test_router_and_app_level_dependencies(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    router = APIRouter(prefix="/r", dependencies=[Depends(requires_auth(permission="org:reports:read"))])

    @router.get("/x")
    async def x(request: Request) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    app = FastAPI(dependencies=[Depends(requires_auth())])
    app.include_router(router)

    @app.get("/y")
    async def y(request: Request) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    ClerkGuard(app, clerk_auth)
    reader = clerk_token(user_id="user_r", permissions=["org:reports:read"])
    with TestClient(app) as client:
        assert client.get("/r/x", headers=bearer(reader)).json() == {"user_id": "user_r"}
        assert_error(client.get("/r/x", headers=bearer(clerk_token())), 403, "authorization-denied")
        assert client.get("/y", headers=bearer(reader)).json() == {"user_id": "user_r"}
        assert_error(client.get("/y"), 401, "token-missing")


def test_app_handlers_for_401_still_win(clerk_auth: ClerkAuth) -> None:
    async def custom(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("sign in first", status_code=401)

    app = FastAPI(exception_handlers={401: custom})
    ClerkGuard(app, clerk_auth)

    @app.get("/x", dependencies=[Depends(requires_auth())])
    async def x() -> dict[str, Any]:
        return {}

    with TestClient(app) as client:
        response = client.get("/x")
    assert (response.status_code, response.text) == (401, "sign in first")


def test_without_clerk_guard_fastapi_default_handler_keeps_status_and_challenge(
    clerk_auth: ClerkAuth,
) -> None:
    app = FastAPI()

    @app.get("/x", dependencies=[Depends(requires_auth(auth=clerk_auth))])
    async def x() -> dict[str, Any]:
        return {}

    with TestClient(app) as client:
        response = client.get("/x")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_options_never_runs_the_endpoint_in_either_form(clerk_auth: ClerkAuth) -> None:
    calls: list[str] = []
    app = FastAPI()
    ClerkGuard(app, clerk_auth)

    @app.get("/d")
    @app.options("/d")
    @require_auth
    async def decorated() -> dict[str, Any]:
        calls.append("decorated")
        return {}

    @app.api_route("/p", methods=["GET", "POST", "OPTIONS"], dependencies=[Depends(requires_auth())])
    async def dependency() -> dict[str, Any]:
        calls.append("dependency")
        return {}

    with TestClient(app) as client:
        d = client.options("/d", headers=bearer("forged.token.here"))
        p = client.options("/p")
    assert (d.status_code, d.content, d.headers["allow"]) == (204, b"", "GET, OPTIONS")
    assert (p.status_code, p.content, p.headers["allow"]) == (204, b"", "GET, POST, OPTIONS")
    assert calls == []


# -- the decorator ------------------------------------------------------------------------------------
def test_decorator_keeps_kind_name_and_signature_plus_a_hidden_connection(clerk_auth: ClerkAuth) -> None:
    async def handler(item_id: int, q: str | None = None) -> dict[str, Any]:
        """Doc."""
        return {}

    def sync_handler(request: Request) -> dict[str, Any]:
        return {}

    wrapped = require_auth(handler)
    assert inspect.iscoroutinefunction(wrapped)
    assert not inspect.iscoroutinefunction(require_auth(sync_handler))
    assert (wrapped.__name__, wrapped.__doc__) == ("handler", "Doc.")
    assert list(inspect.signature(wrapped).parameters) == ["item_id", "q", "clerkguard_connection"]


def test_guarded_handler_without_request_parameter(example: TestClient, clerk_token: Mint) -> None:
    ok = example.get("/no-request", params={"item": 7}, headers=bearer(clerk_token()))
    assert ok.json() == {"guarded": True, "item": 7}
    assert_error(example.get("/no-request"), 401, "token-missing")
    # The hidden connection parameter is not an OpenAPI parameter; `item` still is.
    operation = example.get("/openapi.json").json()["paths"]["/no-request"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["item"]


def test_decorator_above_the_route_decorator_is_refused(clerk_auth: ClerkAuth) -> None:
    app = FastAPI()

    @require_auth  # wraps AFTER @app.get registered the bare function
    @app.get("/secret")
    async def secret() -> dict[str, Any]:
        return {"secret": True}

    with pytest.raises(ConfigurationError, match="/secret"):
        ClerkGuard(app, clerk_auth)


def test_decorator_above_the_route_decorator_with_another_decorator_between_is_refused(
    clerk_auth: ClerkAuth,
) -> None:
    app = FastAPI()

    def logged(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await fn(*args, **kwargs)

        return wrapper

    @require_auth
    @logged
    @app.get("/secret")
    async def secret() -> dict[str, Any]:
        return {"secret": True}

    with pytest.raises(ConfigurationError, match="/secret"):
        ClerkGuard(app, clerk_auth)


def test_decorator_above_the_route_decorator_of_an_included_router_is_refused(
    clerk_auth: ClerkAuth,
) -> None:
    router = APIRouter(prefix="/api")

    @require_auth
    @router.get("/secret")
    async def secret() -> dict[str, Any]:
        return {"secret": True}

    app = FastAPI()
    app.include_router(router, prefix="/v1")
    with pytest.raises(ConfigurationError, match="/v1/api/secret"):
        ClerkGuard(app, clerk_auth)


def test_endpoint_with_its_own_http_connection_parameter(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    app = FastAPI()
    ClerkGuard(app, clerk_auth)

    @app.get("/conn")
    @require_auth
    def conn(connection: HTTPConnection) -> dict[str, Any]:
        return {"user_id": connection.auth.user_id}

    assert list(inspect.signature(conn).parameters) == ["connection"]  # reused, nothing added
    with TestClient(app) as client:
        assert client.get("/conn", headers=bearer(clerk_token(user_id="user_c"))).json() == {
            "user_id": "user_c"
        }
        assert_error(client.get("/conn"), 401, "token-missing")


def test_endpoint_with_its_own_request_parameter_gets_nothing_added(
    clerk_auth: ClerkAuth, clerk_token: Mint
) -> None:
    app = FastAPI()
    ClerkGuard(app, clerk_auth)

    @app.get("/req/{item}")
    @require_auth
    async def req(item: int, request: Request) -> dict[str, Any]:
        return {"user_id": request.auth.user_id, "item": item}

    assert list(inspect.signature(req).parameters) == ["item", "request"]  # reused, nothing added
    with TestClient(app) as client:
        answer = client.get("/req/7", headers=bearer(clerk_token(user_id="user_r")))
        assert answer.json() == {"user_id": "user_r", "item": 7}
        assert_error(client.get("/req/7"), 401, "token-missing")
        assert_error(client.get("/req/7", headers=bearer("x.y.z")), 401, "token-malformed")


def test_misordered_route_added_after_init_is_refused_at_startup_and_first_request(
    clerk_auth: ClerkAuth,
) -> None:
    app = FastAPI()
    ClerkGuard(app, clerk_auth)

    @require_auth
    @app.get("/late")
    async def late() -> dict[str, Any]:
        return {"secret": True}

    with pytest.raises(ConfigurationError, match="/late"), TestClient(app):
        pass  # lifespan startup
    with pytest.raises(ConfigurationError, match="/late"):
        TestClient(app).get("/late")  # no lifespan: the first request


def test_sync_dependency_free_decorator_also_refuses_classes_and_sync_websockets() -> None:
    class Endpoint:
        pass

    with pytest.raises(TypeError, match="endpoint functions"):
        require_auth(Endpoint)

    def sync_ws(websocket: WebSocket) -> None: ...

    with pytest.raises(TypeError, match="websocket"):
        require_auth(sync_ws)


# -- ClerkGuard ------------------------------------------------------------------------------------------
def test_clerk_guard_keeps_the_apps_own_lifespan_and_warms_up(clerk_issuer: LocalIssuer) -> None:
    auth = clerk_issuer.auth()
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"db": "connected"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    guard = ClerkGuard()
    assert guard.init_app(app, auth) is auth

    @app.get("/state")
    @require_auth
    async def state(request: Request) -> dict[str, Any]:
        return {"db": request.state.db, "user_id": request.auth.user_id}

    with TestClient(app) as client:
        assert auth.stats.fetches == 1  # warmed up before the first request
        response = client.get("/state", headers=bearer(clerk_issuer.mint(user_id="user_l")))
        assert response.json() == {"db": "connected", "user_id": "user_l"}
    assert events == ["startup", "shutdown"]
    assert clerk_issuer.request_count == 1
    assert ClerkGuard.auth_for(app) is auth
    with pytest.raises(ConfigurationError, match="already"):
        ClerkGuard(app, auth)


def test_clerk_guard_builds_clerk_auth_from_the_environment(
    clerk_issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch, clerk_token: Mint
) -> None:
    for name, value in clerk_issuer.env().items():
        monkeypatch.setenv(name, value)
    app = FastAPI()
    ClerkGuard(app)

    @app.get("/me")
    async def me(session: Annotated[Session, Depends(requires_auth())]) -> dict[str, Any]:
        return {"user_id": session.user_id}

    with TestClient(app) as client:
        assert client.get("/me", headers=bearer(clerk_token(user_id="user_env"))).json() == {
            "user_id": "user_env"
        }
    assert ClerkGuard.auth_for(app).jwks_uri == clerk_issuer.jwks_uri


def test_no_clerk_auth_anywhere_is_a_configuration_error() -> None:
    app = FastAPI()

    @app.get("/x", dependencies=[Depends(requires_auth())])
    async def x() -> dict[str, Any]:
        return {}

    with pytest.raises(ConfigurationError, match="ClerkGuard"):
        TestClient(app).get("/x", headers=bearer("a.b.c"))


# -- OpenAPI -------------------------------------------------------------------------------------------------
def test_openapi_lists_the_bearer_scheme_on_guarded_operations_only(example: TestClient) -> None:
    schema = example.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["ClerkBearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert list(schema["components"]["securitySchemes"]) == ["ClerkBearer"]
    security = {
        (method, path): operation.get("security")
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    guarded = [key for key, value in security.items() if value is not None]
    # Unguarded: /health, and the webhook receivers (Svix signatures, not bearer tokens).
    unguarded = {("get", "/health"), ("post", "/webhooks/clerk"), ("post", "/depends/webhooks/clerk")}
    for key in unguarded:
        assert security[key] is None, key
    assert len(guarded) == len(security) - len(unguarded)
    optional = {("get", "/optional"), ("get", "/depends/optional")}
    for key in guarded:
        if key in optional:  # OpenAPI's empty requirement: anonymous is fine too
            assert security[key] == [{}, {"ClerkBearer": []}], key
        else:
            assert security[key] == [{"ClerkBearer": []}], key
    # Both forms, router dependencies included.
    for path in ("/protected", "/sync", "/depends/protected", "/depends/async", "/reports/"):
        assert ("get", path) in guarded


def test_openapi_of_routers_included_with_a_prefix(clerk_auth: ClerkAuth) -> None:
    inner = APIRouter()

    @inner.get("/deep")
    @require_auth
    async def deep() -> dict[str, Any]:
        return {}

    outer = APIRouter(prefix="/outer")
    outer.include_router(inner, prefix="/inner")
    app = FastAPI()
    app.include_router(outer, prefix="/v1")
    ClerkGuard(app, clerk_auth)
    schema = app.openapi()
    assert schema["paths"]["/v1/outer/inner/deep"]["get"]["security"] == [{"ClerkBearer": []}]
    assert app.openapi() is schema  # amended once, then FastAPI's cache


# -- websockets ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/ws", "/depends/ws"])
def test_websocket_refused_before_accept_with_the_http_answer(
    example: TestClient, clerk_token: Mint, path: str
) -> None:
    with example.websocket_connect(path, headers=bearer(clerk_token(user_id="user_ws"))) as ws:
        assert ws.receive_json() == {"user_id": "user_ws"}
    with pytest.raises(WebSocketDenialResponse) as denied:
        with example.websocket_connect(path):
            pass
    assert denied.value.status_code == 401
    assert denied.value.json() == {
        "error": "unauthorized",
        "reason": "token-missing",
        "detail": "no session token was provided",
    }
    assert denied.value.headers["www-authenticate"] == "Bearer"
    with pytest.raises(WebSocketDenialResponse) as expired:
        with example.websocket_connect(path, headers=bearer(clerk_token(issued_at=0, expires_in=60))):
            pass
    assert expired.value.status_code == 401
    assert expired.value.json()["reason"] == "token-expired"


@pytest.mark.parametrize("path", ["/ws", "/depends/ws"])
async def test_websocket_without_the_denial_extension_is_closed_with_1008(
    clerk_auth: ClerkAuth, path: str
) -> None:
    """A server without ``websocket.http.response``: the handshake is closed, never accepted."""
    app = build_app(clerk_auth)
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "ws",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "subprotocols": [],
        "extensions": {},  # no websocket.http.response
    }
    await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert (sent[0]["code"], sent[0]["reason"]) == (1008, "token-missing")


# -- the event loop during a cold key fetch ------------------------------------------------------
@pytest.mark.parametrize("path", ["/sync", "/depends/sync"])
async def test_sync_endpoint_cold_fetch_does_not_stall_the_event_loop(
    clerk_issuer: LocalIssuer, path: str
) -> None:
    """A slow JWKS answer (1 s) on a cold cache, hit through a sync endpoint.

    FastAPI runs the decorated sync endpoint (and so its key fetch) in the
    threadpool, and the dependency verifies with the async fetcher: either way
    an unrelated async endpoint answers while the fetch is in flight, and the
    loop keeps ticking. Prints the worst loop lag seen (``-s`` shows it).
    """
    delay = 1.0
    auth = clerk_issuer.auth()
    app = build_app(auth)
    token = clerk_issuer.mint(user_id="user_cold")
    clerk_issuer.set_fault(Fault(delay=delay))
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        tick = 0.005
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(tick)
            lags.append(time.perf_counter() - started - tick)

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ticking = asyncio.create_task(ticker())
            cold = asyncio.create_task(client.get(path, headers=bearer(token)))
            await asyncio.sleep(0.1)  # the fetch is in flight
            ticks_before = len(lags)
            health = await client.get("/health")
            assert health.json() == {"ok": True}
            assert not cold.done()  # answered while the cold request still waits on the keys
            response = await cold
            stop.set()
            await ticking
        assert response.json() == {"user_id": "user_cold", "kind": "sync"}
        assert clerk_issuer.request_count == 1
        # Structural: the loop kept running timers during the 1 s fetch
        # (a blocked loop ticks once, after it).
        assert len(lags) - ticks_before > 10
        print(
            f"\n{path}: worst event-loop lag during a {delay:.1f} s cold key fetch: {max(lags) * 1000:.1f} ms"
        )
    finally:
        clerk_issuer.set_fault(None)
        await auth.aclose()


def test_import_without_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    importlib.import_module("clerkguard.fastapi")
    monkeypatch.delitem(sys.modules, "clerkguard.fastapi")
    monkeypatch.setitem(sys.modules, "fastapi", None)  # makes `import fastapi` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "clerkguard\[fastapi\]"') as info:
        importlib.import_module("clerkguard.fastapi")
    assert isinstance(info.value, ImportError)
