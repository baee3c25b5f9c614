"""Litestar: every handler shape, the native guard, the plugin, errors and OpenAPI.

The shared table (``test_table.py``) pins the answers; this file pins what is
Litestar's own: signatures Litestar reads, sync handlers on and off the event
loop, Controller methods, guards at every layer, the ``clerk_session``
dependency, ``request.user`` with a user loader, the exception handler, the
OpenAPI bearer scheme and the lifecycle hooks.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Controller, Litestar, Request, Response, Router, WebSocket, get, post, websocket
from litestar.di import NamedDependency
from litestar.dto import DataclassDTO
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath, FromQuery
from litestar.testing import AsyncTestClient, TestClient
from litestar.utils.predicates import is_async_callable

from clerkguard import ClerkAuth, ConfigurationError, MissingDependencyError, Session
from clerkguard.litestar import ClerkPlugin, require_auth, requires_auth
from clerkguard.rules import any_of, has_role
from clerkguard.testing import LocalIssuer

AnyRequest = Request[Any, Any, Any]
Mint = Callable[..., str]


@dataclass
class Profile:
    """A return-DTO model (module level: Litestar resolves the annotation by name)."""

    user_id: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client_for(clerk_auth: ClerkAuth) -> Iterator[Callable[..., TestClient[Litestar]]]:
    """``client_for(*handlers, **app_options)``: a started TestClient on a ClerkPlugin app."""
    clients: list[TestClient[Litestar]] = []

    def build(*handlers: Any, plugin: ClerkPlugin | None = None, **options: Any) -> TestClient[Litestar]:
        options.setdefault("openapi_config", None)
        app = Litestar(route_handlers=list(handlers), plugins=[plugin or ClerkPlugin(clerk_auth)], **options)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def assert_error(response: Any, status: int, reason: str) -> None:
    """clerkguard's error answer: status, JSON body, challenge."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["reason"] == reason
    assert set(response.json()) == {"error", "reason", "detail"}
    assert response.headers["www-authenticate"].startswith("Bearer")


# -- the decorator keeps what Litestar reads ----------------------------------------------------
def test_decorated_function_keeps_kind_name_and_signature_plus_request() -> None:
    async def handler(item_id: int, q: str = "x") -> dict[str, Any]:
        """Doc."""
        return {}

    def sync_handler(item_id: int) -> dict[str, Any]:
        return {}

    wrapped = require_auth(handler)
    wrapped_sync = require_auth(role="admin")(sync_handler)

    assert is_async_callable(wrapped)
    assert not is_async_callable(wrapped_sync)
    assert wrapped.__name__ == "handler"
    assert wrapped.__doc__ == "Doc."
    params = inspect.signature(wrapped).parameters
    assert list(params) == ["item_id", "q", "request"]
    assert params["request"].annotation is Request
    assert params["request"].kind is inspect.Parameter.KEYWORD_ONLY
    assert wrapped.__annotations__["request"] is Request
    # The handler's own annotations are not mutated (functools.wraps shares the dict).
    assert "request" not in handler.__annotations__


def test_handler_without_request_param_gets_it_injected_and_dropped(
    client_for: Callable[..., TestClient[Litestar]], clerk_token: Mint
) -> None:
    seen: dict[str, Any] = {}

    @get("/items/{item_id:int}")
    @require_auth
    async def item(item_id: FromPath[int], q: FromQuery[str] = "none") -> dict[str, Any]:
        seen["args"] = (item_id, q)
        return {"item_id": item_id, "q": q}

    client = client_for(item)
    response = client.get("/items/7?q=hi", headers=bearer(clerk_token()))
    assert response.status_code == 200
    assert response.json() == {"item_id": 7, "q": "hi"}
    assert seen["args"] == (7, "hi")  # the handler never saw `request`
    assert_error(client.get("/items/7"), 401, "token-missing")


def test_injected_request_stays_out_of_openapi(clerk_auth: ClerkAuth) -> None:
    @get("/items/{item_id:int}")
    @require_auth
    async def item(item_id: FromPath[int], q: FromQuery[str] = "none") -> dict[str, Any]:
        return {}

    with TestClient(Litestar([item], plugins=[ClerkPlugin(clerk_auth)])) as client:
        operation = client.get("/schema/openapi.json").json()["paths"]["/items/{item_id}"]["get"]
    assert sorted(p["name"] for p in operation["parameters"]) == ["item_id", "q"]


def test_decorator_above_route_decorator_is_refused() -> None:
    with pytest.raises(TypeError, match="below the Litestar route decorator"):

        @require_auth
        @get("/wrong-order")
        async def wrong_order() -> None: ...


@pytest.mark.parametrize("sync_to_thread", [True, False])
def test_sync_handler_keeps_the_users_sync_to_thread_choice_without_warnings(
    sync_to_thread: bool, client_for: Callable[..., TestClient[Litestar]], clerk_token: Mint
) -> None:
    where: dict[str, bool] = {}

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Litestar warns about an implicit sync_to_thread

        @get("/sync", sync_to_thread=sync_to_thread)
        @require_auth
        def handler(request: AnyRequest) -> dict[str, Any]:
            where["on_loop"] = on_event_loop()
            return {"user_id": request.auth.user_id}

    client = client_for(handler)
    response = client.get("/sync", headers=bearer(clerk_token(user_id="user_sync")))
    assert response.json() == {"user_id": "user_sync"}
    assert where["on_loop"] is (not sync_to_thread)
    assert_error(client.get("/sync"), 401, "token-missing")


@pytest.mark.parametrize("sync_to_thread", [True, False])
def test_sync_handler_with_async_authorize_works_on_and_off_the_loop(
    sync_to_thread: bool, client_for: Callable[..., TestClient[Litestar]], clerk_token: Mint
) -> None:
    async def only_alice(session: Session, request: AnyRequest) -> bool:
        await asyncio.sleep(0)
        return session.user_id == "user_alice" and isinstance(request, Request)

    @get("/sync", sync_to_thread=sync_to_thread)
    @require_auth(authorize=only_alice)
    def handler(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    # A sync combinator that returns an awaitable only when it reaches the async rule.
    @get("/combined", sync_to_thread=sync_to_thread)
    @require_auth(authorize=any_of(has_role("admin"), only_alice))
    def combined(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    client = client_for(handler, combined)
    for path in ("/sync", "/combined"):
        alice = client.get(path, headers=bearer(clerk_token(user_id="user_alice")))
        assert alice.json() == {"user_id": "user_alice"}, path
        bob = client.get(path, headers=bearer(clerk_token(user_id="user_bob")))
        assert_error(bob, 403, "authorization-denied")
    admin = client.get("/combined", headers=bearer(clerk_token(user_id="user_root", org_role="admin")))
    assert admin.json() == {"user_id": "user_root"}


def test_controller_methods_sync_and_async(
    client_for: Callable[..., TestClient[Litestar]], clerk_token: Mint
) -> None:
    class Things(Controller):
        path = "/things"
        prefix = "thing"

        @get("/")
        @require_auth(role="admin")
        async def list_things(self) -> dict[str, Any]:
            return {"prefix": self.prefix}

        @post("/{name:str}", sync_to_thread=False)
        @require_auth
        def create(self, name: FromPath[str], request: AnyRequest) -> dict[str, Any]:
            return {"name": f"{self.prefix}-{name}", "by": request.auth.user_id}

    client = client_for(Things)
    admin = bearer(clerk_token(user_id="user_admin", org_role="admin"))
    assert client.get("/things", headers=admin).json() == {"prefix": "thing"}
    assert_error(
        client.get("/things", headers=bearer(clerk_token(org_role="member"))), 403, "authorization-denied"
    )
    created = client.post("/things/x", headers=admin)
    assert created.status_code == 201
    assert created.json() == {"name": "thing-x", "by": "user_admin"}
    assert_error(client.post("/things/x"), 401, "token-missing")


def test_decorator_answers_with_clerkguard_body_without_the_plugin(
    clerk_auth: ClerkAuth, clerk_token: Mint
) -> None:
    @get("/p")
    @require_auth(auth=clerk_auth, role="admin")
    async def p(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    with TestClient(Litestar([p], openapi_config=None)) as client:
        assert_error(client.get("/p"), 401, "token-missing")
        assert_error(client.get("/p", headers=bearer("x.y.z")), 401, "token-malformed")
        assert_error(client.get("/p", headers=bearer(clerk_token())), 403, "authorization-denied")
        ok = client.get("/p", headers=bearer(clerk_token(user_id="user_a", org_role="admin")))
        assert ok.json() == {"user_id": "user_a"}


def test_no_clerk_auth_anywhere_is_a_configuration_error() -> None:
    @get("/p")
    @require_auth
    async def p() -> None: ...

    raised: list[Exception] = []

    def capture(request: AnyRequest, exc: Exception) -> Response[Any]:
        raised.append(exc)
        return Response({"captured": True}, status_code=500)

    app = Litestar([p], exception_handlers={ConfigurationError: capture}, openapi_config=None)
    with TestClient(app) as client:
        assert client.get("/p", headers=bearer("a.b.c")).status_code == 500
    assert len(raised) == 1
    assert isinstance(raised[0], ConfigurationError)
    assert "ClerkPlugin" in str(raised[0])


def test_handler_with_return_dto_still_gets_the_json_error(
    client_for: Callable[..., TestClient[Litestar]], clerk_token: Mint
) -> None:
    @get("/profile", return_dto=DataclassDTO[Profile])
    @require_auth
    async def profile(request: AnyRequest) -> Profile:
        return Profile(request.auth.user_id)

    client = client_for(profile)
    assert client.get("/profile", headers=bearer(clerk_token(user_id="user_p"))).json() == {
        "user_id": "user_p"
    }
    assert_error(client.get("/profile"), 401, "token-missing")


# -- the native guard ------------------------------------------------------------------------------
def test_guard_at_app_router_controller_and_handler_layers(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    @get("/handler", guards=[requires_auth(role="admin")])
    async def handler_layer(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    @get("/in-router")
    async def in_router(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.user.user_id}

    class Guarded(Controller):
        path = "/controller"
        guards = [requires_auth(permission="org:reports:read")]  # noqa: RUF012

        @get("/")
        async def index(self, request: AnyRequest) -> dict[str, Any]:
            return {"user_id": request.auth.user_id}

    @get("/everything")
    async def everything(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    @get("/open", exclude_from_auth=True)
    async def open_route() -> dict[str, Any]:
        return {"open": True}

    router = Router("/router", route_handlers=[in_router], guards=[requires_auth()])
    app = Litestar(
        [handler_layer, router, Guarded, everything, open_route],
        plugins=[ClerkPlugin(clerk_auth)],
        guards=[requires_auth(optional=True)],
        openapi_config=None,
    )
    member = bearer(clerk_token(user_id="user_m", org_role="member"))
    admin = bearer(clerk_token(user_id="user_a", org_role="admin", permissions=["org:reports:read"]))
    with TestClient(app) as client:
        assert_error(client.get("/handler", headers=member), 403, "authorization-denied")
        assert client.get("/handler", headers=admin).json() == {"user_id": "user_a"}
        assert_error(client.get("/router/in-router"), 401, "token-missing")
        assert client.get("/router/in-router", headers=member).json() == {"user_id": "user_m"}
        assert_error(client.get("/controller", headers=member), 403, "authorization-denied")
        assert client.get("/controller", headers=admin).json() == {"user_id": "user_a"}
        # The app-level guard is optional: anonymous passes, a bad token does not.
        assert client.get("/open").json() == {"open": True}
        assert_error(
            client.get("/everything", headers=bearer(clerk_token(expires_in=-60))), 401, "token-expired"
        )
        assert_error(client.get("/router/in-router", headers=bearer("x.y.z")), 401, "token-malformed")


def test_guard_errors_keep_headers_and_litestar_can_override_rendering(
    clerk_auth: ClerkAuth, clerk_token: Mint
) -> None:
    @get("/g", guards=[requires_auth(role="admin")])
    async def g() -> None: ...

    def custom_401(request: AnyRequest, exc: Exception) -> Response[Any]:
        return Response({"custom": True}, status_code=401)

    with TestClient(Litestar([g], plugins=[ClerkPlugin(clerk_auth)], openapi_config=None)) as client:
        expired = client.get("/g", headers=bearer(clerk_token(expires_in=-60)))
        assert_error(expired, 401, "token-expired")
        assert 'error="invalid_token"' in expired.headers["www-authenticate"]
        denied = client.get("/g", headers=bearer(clerk_token()))
        assert_error(denied, 403, "authorization-denied")
        assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]

    app = Litestar(
        [g], plugins=[ClerkPlugin(clerk_auth)], exception_handlers={401: custom_401}, openapi_config=None
    )
    with TestClient(app) as client:
        assert client.get("/g").json() == {"custom": True}  # the app's status handler wins


def test_guard_answers_503_with_retry_after_when_keys_are_down(
    clerk_issuer: LocalIssuer, clerk_token: Mint
) -> None:
    clerk_issuer.set_fault(status=500)
    auth = clerk_issuer.auth(http_timeout=1.0)

    @get("/g", guards=[requires_auth()])
    async def g() -> None: ...

    try:
        with TestClient(Litestar([g], plugins=[ClerkPlugin(auth)], openapi_config=None)) as client:
            response = client.get("/g", headers=bearer(clerk_token()))
        assert_error(response, 503, "jwks-unavailable")
        assert int(response.headers["retry-after"]) >= 1
    finally:
        auth.close()


def test_guard_protects_websockets_and_the_decorator_points_there(
    client_for: Callable[..., TestClient[Litestar]], clerk_token: Mint
) -> None:
    @websocket("/ws", guards=[requires_auth()])
    async def ws(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_json({"user_id": socket.auth.user_id})
        await socket.close()

    client = client_for(ws)
    token = clerk_token(user_id="user_ws")
    with client.websocket_connect("/ws", headers=bearer(token)) as connection:
        assert connection.receive_json() == {"user_id": "user_ws"}
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws") as connection:
            connection.receive_json()

    with pytest.raises(TypeError, match="guards=\\[requires_auth"):

        @require_auth
        async def decorated_ws(socket: WebSocket[Any, Any, Any]) -> None: ...


# -- request.auth / request.user / the dependency -----------------------------------------------------
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_user_loader_sets_request_user_and_keeps_the_session_on_request_auth(
    kind: str, clerk_auth: ClerkAuth, clerk_token: Mint
) -> None:
    @dataclass
    class User:
        name: str

    def load_sync(session: Session, connection: Any) -> User:
        return User(f"loaded {session.user_id}")

    async def load_async(session: Session, connection: Any) -> User:
        return User(f"loaded {session.user_id}")

    def reply(request: AnyRequest) -> dict[str, Any]:
        return {"user": request.user.name, "auth": request.auth.user_id}

    @get("/decorated")
    @require_auth
    async def decorated(request: AnyRequest) -> dict[str, Any]:
        return reply(request)

    @get("/decorated-sync", sync_to_thread=False)
    @require_auth
    def decorated_sync(request: AnyRequest) -> dict[str, Any]:
        return reply(request)

    @get("/guarded", guards=[requires_auth()])
    async def guarded(request: AnyRequest) -> dict[str, Any]:
        return reply(request)

    plugin = ClerkPlugin(clerk_auth, user_loader=load_sync if kind == "sync" else load_async)
    app = Litestar([decorated, decorated_sync, guarded], plugins=[plugin], openapi_config=None)
    with TestClient(app) as client:
        for path in ("/decorated", "/decorated-sync", "/guarded"):
            response = client.get(path, headers=bearer(clerk_token(user_id="user_u")))
            assert response.json() == {"user": "loaded user_u", "auth": "user_u"}, path


def test_session_dependency_requires_a_token_by_itself(
    client_for: Callable[..., TestClient[Litestar]], clerk_token: Mint
) -> None:
    @get("/me")
    async def me(clerk_session: NamedDependency[Session]) -> dict[str, Any]:
        return {"user_id": clerk_session.user_id, "type": type(clerk_session).__name__}

    @get("/guarded-me", guards=[requires_auth(role="admin")])
    async def guarded_me(clerk_session: NamedDependency[Session], request: AnyRequest) -> dict[str, Any]:
        return {"same": clerk_session is request.auth}

    client = client_for(me, guarded_me)
    assert client.get("/me", headers=bearer(clerk_token(user_id="user_d"))).json() == {
        "user_id": "user_d",
        "type": "Session",
    }
    assert_error(client.get("/me"), 401, "token-missing")
    assert_error(client.get("/me", headers=bearer(clerk_token(expires_in=-60))), 401, "token-expired")
    admin = bearer(clerk_token(org_role="admin"))
    assert client.get("/guarded-me", headers=admin).json() == {"same": True}


# -- OpenAPI -----------------------------------------------------------------------------------------------
def test_openapi_shows_the_bearer_scheme_on_guarded_operations_only(clerk_auth: ClerkAuth) -> None:
    @get("/decorated")
    @require_auth
    async def decorated() -> None: ...

    @get("/optional")
    @require_auth(optional=True)
    async def optional() -> None: ...

    @get("/guarded", guards=[requires_auth()])
    async def guarded() -> None: ...

    @get("/injected")
    async def injected(clerk_session: NamedDependency[Session]) -> None: ...

    @get("/public")
    async def public() -> None: ...

    class Reports(Controller):
        path = "/reports"
        guards = [requires_auth()]  # noqa: RUF012

        @get("/")
        async def index(self) -> None: ...

        @get("/open", exclude_from_auth=True)
        async def open_report(self) -> None: ...

    app = Litestar(
        [decorated, optional, guarded, injected, public, Reports], plugins=[ClerkPlugin(clerk_auth)]
    )
    with TestClient(app) as client:
        schema = client.get("/schema/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["ClerkBearer"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    security = {path: item["get"].get("security") for path, item in schema["paths"].items()}
    assert security["/decorated"] == [{"ClerkBearer": []}]
    assert security["/guarded"] == [{"ClerkBearer": []}]
    assert security["/injected"] == [{"ClerkBearer": []}]
    assert security["/optional"] == [{}, {"ClerkBearer": []}]
    assert security["/public"] is None
    assert security["/reports"] == [{"ClerkBearer": []}]
    assert security["/reports/open"] is None  # excluded from the controller's guard


# -- lifecycle, clients, key fetching ---------------------------------------------------------------------
async def test_async_test_client_one_fetch_for_many_requests_and_clean_shutdown(
    clerk_issuer: LocalIssuer,
) -> None:
    auth = clerk_issuer.auth()

    @get("/a")
    @require_auth
    async def a(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    @get("/s", sync_to_thread=True)
    @require_auth
    def s(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    app = Litestar([a, s], plugins=[ClerkPlugin(auth)], openapi_config=None)
    async with AsyncTestClient(app) as client:
        assert auth.stats.fetches == 1  # the startup hook warmed the cache
        for i in range(10):
            token = clerk_issuer.mint(user_id=f"user_{i}")
            for path in ("/a", "/s"):
                response = await client.get(path, headers=bearer(token))
                assert response.json() == {"user_id": f"user_{i}"}
    assert clerk_issuer.request_count == 1
    # Shutdown stopped the refresher: no clerkguard task is left on the loop.
    leftovers = [t for t in asyncio.all_tasks() if "Keyring" in t.get_coro().__qualname__]
    assert leftovers == []


def test_test_client_without_lifespan_fetches_lazily_once(clerk_issuer: LocalIssuer) -> None:
    auth = clerk_issuer.auth()

    @get("/a")
    @require_auth
    async def a(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    # Outside `with`, Litestar's TestClient runs no startup hook: lazy fetching must do.
    client = TestClient(Litestar([a], plugins=[ClerkPlugin(auth)], openapi_config=None))
    try:
        for i in range(5):
            response = client.get("/a", headers=bearer(clerk_issuer.mint(user_id=f"user_{i}")))
            assert response.json() == {"user_id": f"user_{i}"}
        assert clerk_issuer.request_count == 1
    finally:
        auth.close()


def test_plugin_builds_clerk_auth_from_the_environment(
    clerk_issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch, clerk_token: Mint
) -> None:
    for name, value in clerk_issuer.env().items():
        monkeypatch.setenv(name, value)
    plugin = ClerkPlugin()

    @get("/a")
    @require_auth
    async def a(request: AnyRequest) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    with TestClient(Litestar([a], plugins=[plugin], openapi_config=None)) as client:
        assert isinstance(plugin.auth, ClerkAuth)
        assert client.get("/a", headers=bearer(clerk_token(user_id="user_env"))).json() == {
            "user_id": "user_env"
        }


def test_failures_are_logged_without_the_token(
    client_for: Callable[..., TestClient[Litestar]], clerk_token: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    def crash(session: Session, request: AnyRequest) -> bool:
        raise ValueError("rule bug")

    @get("/crash")
    @require_auth(authorize=crash)
    async def crashing() -> None: ...

    token = clerk_token()
    # Litestar's default logging config replaces the root handlers (and caplog's).
    client = client_for(crashing, logging_config=None)
    with caplog.at_level(logging.DEBUG):
        response = client.get("/crash", headers=bearer(token))
    assert_error(response, 403, "authorization-error")
    assert "ValueError" in caplog.text
    assert token not in caplog.text
    assert token.split(".")[2] not in response.text


def test_import_without_litestar_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "clerkguard.litestar")
    monkeypatch.setitem(sys.modules, "litestar", None)  # makes `import litestar` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "clerkguard\[litestar\]"') as info:
        importlib.import_module("clerkguard.litestar")
    assert isinstance(info.value, ImportError)
