"""Sanic: every handler shape through both test clients, the extension, JSON errors.

The shared table (``test_table.py``) pins the answers; this file pins what is
Sanic's own: blueprints, ``HTTPMethodView`` (class ``decorators`` and single
methods, ``self`` first), sync handlers, ``request.ctx.auth``, listeners that
run around every test-client request (one JWKS fetch all the same), the
decorator-order check, and JSON bodies whatever error format Sanic guesses.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import itertools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sanic import Blueprint, Request, Sanic
from sanic.response import HTTPResponse, json
from sanic.views import HTTPMethodView
from sanic_testing.testing import SanicASGITestClient, SanicTestClient

from clerkguard import ClerkAuth, ConfigurationError, MissingDependencyError, Session
from clerkguard.sanic import ClerkGuard, SanicAdapter, require_auth
from clerkguard.testing import LocalIssuer

Mint = Callable[..., str]
_names = itertools.count()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_app() -> Sanic[Any, Any]:
    Sanic.test_mode = True  # many apps per process
    return Sanic(f"clerkguard_test_{next(_names)}")


def whoami(request: Request, **extra: Any) -> HTTPResponse:
    session: Session = request.ctx.auth
    return json({"user_id": session.user_id, **extra})


def add_every_shape(app: Sanic[Any, Any]) -> list[str]:
    """One route per handler shape; returns their paths."""

    @app.get("/async")
    @require_auth
    async def async_handler(request: Request) -> HTTPResponse:
        return whoami(request, shape="async")

    @app.get("/sync")
    @require_auth(role="admin")
    def sync_handler(request: Request) -> HTTPResponse:
        return whoami(request, shape="sync")

    @app.get("/with-arg/<item:int>")
    @require_auth
    async def with_arg(request: Request, item: int) -> HTTPResponse:
        return whoami(request, shape=f"arg-{item}")

    bp = Blueprint(f"bp_{next(_names)}", url_prefix="/bp")

    @bp.get("/")
    @require_auth
    async def blueprint_route(request: Request) -> HTTPResponse:
        return whoami(request, shape="blueprint")

    class ClassGuarded(HTTPMethodView):
        decorators = [require_auth(role="admin")]  # noqa: RUF012 - Sanic's API

        async def get(self, request: Request) -> HTTPResponse:
            return whoami(request, shape="view-async")

        def post(self, request: Request) -> HTTPResponse:
            return whoami(request, shape="view-sync")

    class MethodGuarded(HTTPMethodView):
        @require_auth(role="admin")
        async def get(self, request: Request) -> HTTPResponse:
            return whoami(request, shape="method-async", view=type(self).__name__)

        @require_auth(role="admin")
        def post(self, request: Request) -> HTTPResponse:
            return whoami(request, shape="method-sync")

    app.blueprint(bp)
    app.add_route(ClassGuarded.as_view(), "/class-view")
    app.add_route(MethodGuarded.as_view(), "/method-view")
    return ["/async", "/sync", "/with-arg/3", "/bp", "/class-view", "/method-view"]


SHAPES = [
    ("GET", "/async", "async"),
    ("GET", "/sync", "sync"),
    ("GET", "/with-arg/3", "arg-3"),
    ("GET", "/bp", "blueprint"),
    ("GET", "/class-view", "view-async"),
    ("POST", "/class-view", "view-sync"),
    ("GET", "/method-view", "method-async"),
    ("POST", "/method-view", "method-sync"),
]


@pytest.fixture
def asgi(clerk_auth: ClerkAuth) -> Iterator[Callable[..., Any]]:
    """``asgi(method, path, **kw)`` against an app with every shape, via Sanic's ASGI client."""
    app = new_app()
    ClerkGuard(app, auth=clerk_auth)
    add_every_shape(app)
    client = SanicASGITestClient(app)
    loop = asyncio.new_event_loop()

    def send(method: str, path: str, **kwargs: Any) -> Any:
        _, response = loop.run_until_complete(client.request(method, path, gather_request=False, **kwargs))
        return response

    yield send
    loop.run_until_complete(client.aclose())
    loop.close()


def assert_error(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json) == {"error", "reason", "detail"}
    assert response.json["reason"] == reason
    assert response.headers["www-authenticate"].startswith("Bearer")


# -- handler shapes ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "shape"), SHAPES)
def test_every_shape_through_the_asgi_client(
    method: str, path: str, shape: str, asgi: Callable[..., Any], clerk_token: Mint
) -> None:
    admin = bearer(clerk_token(user_id="user_admin", org_role="admin"))
    response = asgi(method, path, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json["user_id"] == "user_admin"
    assert response.json["shape"] == shape
    assert_error(asgi(method, path), 401, "token-missing")
    assert_error(asgi(method, path, headers=bearer("x.y.z")), 401, "token-malformed")


def test_method_view_guard_gets_self_first_and_finds_the_request(
    asgi: Callable[..., Any], clerk_token: Mint
) -> None:
    response = asgi("GET", "/method-view", headers=bearer(clerk_token(org_role="admin")))
    assert response.json["view"] == "MethodGuarded"
    member = bearer(clerk_token(org_role="member"))
    for method, path, _ in SHAPES:
        if path in ("/sync", "/class-view", "/method-view"):
            assert_error(asgi(method, path, headers=member), 403, "authorization-denied")


def test_every_shape_through_the_real_server_test_client(
    clerk_issuer: LocalIssuer, clerk_token: Mint
) -> None:
    auth = clerk_issuer.auth()
    app = new_app()
    ClerkGuard(app, auth=auth)
    add_every_shape(app)
    client = SanicTestClient(app)
    admin = bearer(clerk_token(user_id="user_admin", org_role="admin"))
    try:
        for method, path, shape in SHAPES:
            _, response = client.request(
                path, http_method=method.lower(), headers=admin, gather_request=False
            )
            assert response.status_code == 200, (path, response.text)
            assert response.json["shape"] == shape
        _, response = client.get("/async", gather_request=False)
        assert_error(response, 401, "token-missing")
        # The server started and stopped once per request; the listeners warmed
        # the cache once and later starts found fresh keys.
        assert clerk_issuer.request_count == 1
        assert auth.stats.fetches == 1
    finally:
        auth.close()


def test_wrappers_are_coroutine_functions_keeping_name_and_doc() -> None:
    def handler(request: Request) -> HTTPResponse:
        """Doc."""
        return json({})

    wrapped = require_auth(handler)
    # Sanic awaits whatever a handler returns; an async wrapper lets the guard
    # await key fetches and async authorize instead of blocking the event loop.
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "handler"
    assert wrapped.__doc__ == "Doc."


def test_sync_handler_with_async_authorize(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    async def only_alice(session: Session, request: Request) -> bool:
        await asyncio.sleep(0)
        return session.user_id == "user_alice" and isinstance(request, Request)

    app = new_app()
    ClerkGuard(app, auth=clerk_auth)

    @app.get("/s")
    @require_auth(authorize=only_alice)
    def sync_handler(request: Request) -> HTTPResponse:
        return whoami(request)

    _, ok = app.test_client.get("/s", headers=bearer(clerk_token(user_id="user_alice")))
    assert ok.json == {"user_id": "user_alice"}
    _, denied = app.test_client.get("/s", headers=bearer(clerk_token(user_id="user_bob")))
    assert_error(denied, 403, "authorization-denied")


# -- errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("accept", ["text/html", "text/plain", "*/*"])
def test_errors_are_json_whatever_format_sanic_would_guess(
    accept: str, clerk_auth: ClerkAuth, clerk_token: Mint
) -> None:
    app = new_app()
    app.config.FALLBACK_ERROR_FORMAT = "html"
    ClerkGuard(app, auth=clerk_auth)

    @app.get("/p")
    @require_auth(role="admin")
    async def p(request: Request) -> HTTPResponse:
        return whoami(request)

    client = SanicASGITestClient(app)
    loop = asyncio.new_event_loop()
    try:
        for headers, status, reason in [
            ({}, 401, "token-missing"),
            (bearer(clerk_token(expires_in=-60)), 401, "token-expired"),
            (bearer(clerk_token()), 403, "authorization-denied"),
        ]:
            _, response = loop.run_until_complete(
                client.request("GET", "/p", headers={"Accept": accept, **headers}, gather_request=False)
            )
            assert_error(response, status, reason)
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def test_keys_down_is_503_with_retry_after(clerk_issuer: LocalIssuer, clerk_token: Mint) -> None:
    clerk_issuer.set_fault(status=502)
    auth = clerk_issuer.auth(http_timeout=1.0)
    app = new_app()
    ClerkGuard(app, auth=auth)

    @app.get("/p")
    @require_auth
    async def p(request: Request) -> HTTPResponse:
        return whoami(request)

    try:
        _, response = app.test_client.get("/p", headers=bearer(clerk_token()))
        assert_error(response, 503, "jwks-unavailable")
        assert int(response.headers["retry-after"]) >= 1
    finally:
        auth.close()


# -- the extension ------------------------------------------------------------------------------
def test_init_app_later_builds_clerk_auth_from_app_config(
    clerk_issuer: LocalIssuer, clerk_token: Mint
) -> None:
    extension = ClerkGuard()
    app = new_app()
    for name, value in clerk_issuer.env().items():
        app.config[name] = value
    extension.init_app(app)

    @app.get("/p")
    @require_auth
    async def p(request: Request) -> HTTPResponse:
        return whoami(request)

    assert isinstance(extension.auth, ClerkAuth)
    assert extension.auth.issuer == clerk_issuer.issuer
    try:
        _, response = app.test_client.get("/p", headers=bearer(clerk_token(user_id="user_cfg")))
        assert response.json == {"user_id": "user_cfg"}
    finally:
        extension.auth.close()


def test_guard_with_its_own_auth_needs_no_extension(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    app = new_app()

    @app.get("/p")
    @require_auth(auth=clerk_auth)
    async def p(request: Request) -> HTTPResponse:
        return whoami(request)

    _, response = app.test_client.get("/p", headers=bearer(clerk_token(user_id="user_own")))
    assert response.json == {"user_id": "user_own"}


def test_no_clerk_auth_at_all_is_a_configuration_error() -> None:
    app = new_app()
    raised: list[Exception] = []

    @app.exception(ConfigurationError)
    async def capture(request: Request, exc: Exception) -> HTTPResponse:
        raised.append(exc)
        return json({"captured": True}, status=500)

    @app.get("/p")
    @require_auth
    async def p(request: Request) -> HTTPResponse:
        return whoami(request)

    _, response = app.test_client.get("/p", headers=bearer("a.b.c"))
    assert response.status_code == 500
    assert len(raised) == 1
    assert "ClerkGuard(app)" in str(raised[0])


def test_guard_above_the_route_decorator_refuses_to_start(clerk_auth: ClerkAuth) -> None:
    app = new_app()
    ClerkGuard(app, auth=clerk_auth)

    @require_auth  # wrong: Sanic already registered the bare function
    @app.get("/secret")
    async def secret(request: Request) -> HTTPResponse:
        return json({"secret": True})

    @app.get("/fine")
    @require_auth
    async def fine(request: Request) -> HTTPResponse:
        return json({"fine": True})

    client = SanicASGITestClient(app)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ConfigurationError, match=r"above the route decorator of .*secret") as info:
            loop.run_until_complete(client.request("GET", "/secret", gather_request=False))
        assert "fine" not in str(info.value)
    finally:
        loop.close()


def test_the_order_check_can_be_turned_off(clerk_auth: ClerkAuth) -> None:
    app = new_app()
    ClerkGuard(app, auth=clerk_auth, check_decorator_order=False)

    @require_auth
    @app.get("/public-on-purpose")
    async def public(request: Request) -> HTTPResponse:
        return json({"public": True})

    _, response = app.test_client.get("/public-on-purpose")
    assert response.json == {"public": True}


def test_many_asgi_requests_one_fetch_and_no_task_left_behind(clerk_issuer: LocalIssuer) -> None:
    auth = clerk_issuer.auth()
    app = new_app()
    ClerkGuard(app, auth=auth)
    add_every_shape(app)
    client = SanicASGITestClient(app)
    loop = asyncio.new_event_loop()
    try:
        for i in range(15):
            token = clerk_issuer.mint(user_id=f"user_{i}", org_role="admin")
            _, response = loop.run_until_complete(
                client.request("GET", "/sync", headers=bearer(token), gather_request=False)
            )
            assert response.json["user_id"] == f"user_{i}"
            # after_server_stop ran: no clerkguard task is left on the loop.
            pending = [t for t in asyncio.all_tasks(loop) if "Keyring" in t.get_coro().__qualname__]
            assert pending == []
        assert clerk_issuer.request_count == 1
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
        auth.close()


# -- the adapter's hooks ------------------------------------------------------------------------
def test_adapter_reads_the_exact_cookie_name_and_finds_the_request(clerk_auth: ClerkAuth) -> None:
    app = new_app()
    adapter = SanicAdapter(clerk_auth)
    seen: dict[str, Any] = {}

    @app.get("/c")
    async def c(request: Request) -> HTTPResponse:
        seen["cookie"] = adapter.cookie(request, "__session")
        seen["found"] = adapter.find_request(("self", request), {}) is request
        return json({})

    # Sanic's own cookies.get("__session") would prefer the __Host- variant.
    app.test_client.get("/c", headers={"Cookie": "__Host-__session=host; __session=plain"})
    assert seen == {"cookie": "plain", "found": True}
    with pytest.raises(TypeError, match="without a sanic Request"):
        adapter.find_request(("not a request",), {})


def test_import_without_sanic_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "clerkguard.sanic")
    monkeypatch.setitem(sys.modules, "sanic", None)  # makes `import sanic` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "clerkguard\[sanic\]"') as info:
        importlib.import_module("clerkguard.sanic")
    assert isinstance(info.value, ImportError)
