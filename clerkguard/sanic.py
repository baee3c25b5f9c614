"""Sanic integration: ``@require_auth`` and the [`ClerkGuard`][clerkguard.sanic.ClerkGuard] extension.



    app = Sanic("api")
    ClerkGuard(app)                      # ClerkAuth() from CLERK_* variables

    @app.get("/me")
    @require_auth(role="admin")
    async def me(request: Request) -> HTTPResponse:
        return json({"user_id": request.ctx.auth.user_id})

The decorator goes below ``@app.get(...)`` and works on plain handlers,
blueprint routes and `HTTPMethodView` (in the class's
``decorators`` list or on a single method, where ``self`` comes first: the
request is found by its type). The verified session is ``request.ctx.auth``
(``None`` for an ``OPTIONS`` preflight or an anonymous ``optional`` request).

Errors are answered with ``sanic.response.json`` directly, so the body is
``{"error": ..., "reason": ..., "detail": ...}`` whatever error format Sanic would guess.

Websocket handlers take the same decorator. With the extension, a refused
handshake gets that HTTP answer before the upgrade (also under an ASGI
server); without it, the socket closes with 1008 and the reason code after
the upgrade. The handler runs in neither case.
"""

from __future__ import annotations

try:
    import sanic
except ImportError as exc:  # tested by hiding sanic from sys.modules
    from .errors import MissingDependencyError

    raise MissingDependencyError("sanic", "sanic") from exc

import functools
import inspect
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from sanic.models.asgi import MockTransport
from sanic.response import HTTPResponse, empty, json

from ._webhook_guard import RequireWebhook, build_require_webhook
from .adapters import (
    Adapter,
    Guard,
    Preflight,
    RequireAuth,
    _maybe_await,
    _misordered_message,
    _misordered_views,
    _remember,
    auth_from_config,
    build_require_auth,
    guard_of,
    unguarded_views,
)
from .auth import ClerkAuth
from .errors import AuthError, ConfigurationError
from .session import Session

if TYPE_CHECKING:
    from .webhooks import WebhookEvent

__all__ = ["ClerkGuard", "SanicAdapter", "error_response", "require_auth", "require_webhook"]

#: Attribute of ``app.ctx`` holding the [`ClerkGuard`][clerkguard.sanic.ClerkGuard] extension.
EXTENSION_KEY = "clerkguard"


def error_response(error: AuthError) -> HTTPResponse:
    """The JSON answer for ``error``: ``{"error": ..., "reason": ..., "detail": ...}`` plus its headers."""
    return json(error.to_dict(), status=error.status, headers=error.headers())


class SanicAdapter(Adapter[sanic.Request]):
    """clerkguard's hooks for Sanic.

    Every wrapper is a coroutine function, even around a sync handler: Sanic
    runs sync handlers on the event loop anyway and awaits whatever a handler
    returns, so the check can await a key fetch or an async ``authorize``
    instead of blocking the loop.
    """

    async_only = True

    def header(self, request: sanic.Request, name: str) -> str | None:
        """A request header (case-insensitive)."""
        value = request.headers.get(name)
        return value if isinstance(value, str) else None

    def header_values(self, request: sanic.Request, name: str) -> Sequence[str]:
        """Every line of a header, as received."""
        return request.headers.getall(name, [])

    def is_websocket(self, request: sanic.Request) -> bool:
        """Whether the request is routed to a websocket handler (a handshake)."""
        route = request.route
        return route is not None and bool(getattr(route.handler, "is_websocket", False))

    def options_response(self, request: sanic.Request) -> HTTPResponse:
        """``204`` with the route's methods in ``Allow`` (what Sanic's own OPTIONS handling says)."""
        methods = set(request.route.methods) if request.route is not None else set()
        return empty(status=204, headers={"Allow": ", ".join(sorted(methods | {"OPTIONS"}))})

    def method(self, request: sanic.Request) -> str:
        """The HTTP method, upper case."""
        return str(request.method).upper()

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> sanic.Request:
        """The request argument: first positional for functions, after ``self`` for views."""
        for value in args:
            if isinstance(value, sanic.Request):
                return value
        for value in kwargs.values():
            if isinstance(value, sanic.Request):
                return value
        raise TypeError("@require_auth: the handler was called without a sanic Request argument")

    def store(self, request: sanic.Request, session: Session | None) -> None:
        """``request.ctx.auth`` = the verified session (or ``None``)."""
        request.ctx.auth = session

    def reject(self, request: sanic.Request, error: AuthError) -> HTTPResponse:
        """A JSON error response (never Sanic's guessed HTML/text format)."""
        return error_response(error)

    def auth_for(self, request: sanic.Request) -> ClerkAuth:
        """This adapter's ClerkAuth, else the app's [`ClerkGuard`][clerkguard.sanic.ClerkGuard]'s."""
        if self.auth is not None:
            return self.auth
        extension = getattr(request.app.ctx, EXTENSION_KEY, None)
        if isinstance(extension, ClerkGuard) and extension.auth is not None:
            return extension.auth
        raise ConfigurationError(
            "no ClerkAuth for this Sanic app: call ClerkGuard(app) (or init_app) "
            "or pass auth= to require_auth"
        )

    # -- webhooks ------------------------------------------------------------------------------
    def body(self, request: sanic.Request, limit: int) -> bytes:
        """The raw body Sanic has already read (bounded by ``REQUEST_MAX_SIZE``)."""
        return bytes(request.body or b"")

    def json_response(self, request: sanic.Request, status: int, content: Mapping[str, Any]) -> HTTPResponse:
        """A JSON response."""
        return json(dict(content), status=status)

    def webhook_secret(self, request: sanic.Request) -> str | None:
        """``app.config.CLERK_WEBHOOK_SIGNING_SECRET`` (a string, or a list during a rotation)."""
        value = request.app.config.get("CLERK_WEBHOOK_SIGNING_SECRET")
        if isinstance(value, (list, tuple)):
            return ", ".join(value)
        return value if isinstance(value, str) else None

    def store_webhook(self, request: sanic.Request, event: WebhookEvent) -> None:
        """``request.ctx.webhook`` = the verified event."""
        request.ctx.webhook = event


#: ``request.ctx`` attribute: the guard that already let this websocket handshake through.
_PASSED = "_clerkguard_passed"
#: Websocket close code for a refusal after the upgrade (RFC 6455: policy violation).
POLICY_VIOLATION = 1008


def _wrap(handler: Callable[..., Any], guard: Guard[Any]) -> Callable[..., Any]:
    """The default guard wrapper, plus websockets.

    Sanic completes a websocket handshake before it calls the handler, so the
    [`ClerkGuard`][clerkguard.sanic.ClerkGuard] extension checks guarded websocket routes in a request
    middleware, before the upgrade, and answers a refusal as plain HTTP
    (401/403/503 with the JSON body). Without the extension the check can
    only run after the upgrade: a refusal then closes the websocket with
    1008 (policy violation) and the ``reason`` code, never calling the handler.
    """
    _remember(handler)  # for the decorator-order check, as the core's default wrapper does
    adapter = guard.adapter
    # A coroutine function is awaited directly: what the default call_async does for
    # it, without its isawaitable test on every request.
    coroutine = inspect.iscoroutinefunction(handler) and type(adapter).call_async is Adapter.call_async

    @functools.wraps(handler)
    async def sanic_wrapper(*args: Any, **kwargs: Any) -> Any:
        request = adapter.find_request(args, kwargs)
        # The common request (a websocket handshake too: the same decision), at once.
        session = guard.cached(request)
        if session is not None:
            adapter.store(request, session)
            if coroutine:
                return await handler(*args, **kwargs)
            return await adapter.call_async(handler, args, kwargs)
        if not adapter.is_websocket(request):
            # The core's default wrapper, inline (the request is already found):
            # a second wrapper call per request is measurable under load.
            try:
                session = await guard.acheck(request)
            except AuthError as error:
                return adapter.reject(request, error)
            except Preflight:
                return await _maybe_await(adapter.options_response(request))
            adapter.store(request, session)
            return await adapter.call_async(handler, args, kwargs)
        if getattr(request.ctx, _PASSED, None) is not guard:
            try:
                session = await guard.acheck(request)
            except (AuthError, Preflight) as error:
                reason = error.reason if isinstance(error, AuthError) else "preflight"
                socket = next((a for a in args if hasattr(a, "close") and a is not request), None)
                if socket is not None:
                    await socket.close(POLICY_VIOLATION, reason)
                return None
            adapter.store(request, session)
        return await adapter.call_async(handler, args, kwargs)

    sanic_wrapper.__clerkguard__ = guard  # type: ignore[attr-defined]
    return sanic_wrapper


#: ``@require_auth`` / ``@require_auth(authorize=..., role=..., optional=...)`` for
#: Sanic handlers, blueprint routes, HTTPMethodView methods and websocket handlers.
require_auth: RequireAuth = build_require_auth(SanicAdapter(), wrap=_wrap)


def _websocket_guard(handler: Any) -> Guard[Any] | None:
    """The guard of a guarded websocket route's handler (Sanic's upgrade partial), if any."""
    if not getattr(handler, "is_websocket", False) or not isinstance(handler, functools.partial):
        return None
    return guard_of(handler.args[0]) if handler.args else None


async def _check_before_upgrade(request: sanic.Request) -> HTTPResponse | None:
    """Route middleware of guarded websocket routes: the check runs before the handshake."""
    route = request.route
    guard = _websocket_guard(route.handler) if route is not None else None
    if guard is None:
        return None
    try:
        session = await guard.acheck(request)
    except AuthError as error:
        if isinstance(request.transport, MockTransport):  # under an ASGI server
            _deny_over_asgi(request.transport, error.reason)
        return error_response(error)
    guard.adapter.store(request, session)
    setattr(request.ctx, _PASSED, guard)
    return None


def _narrow_upgrade_check(app: sanic.Sanic[Any, Any]) -> None:
    """Move the pre-upgrade check from every route to the guarded websocket routes.

    App-wide request middleware costs every HTTP request of the app a call and
    Sanic's two middleware signal dispatches. Once the routes are known (at
    server start, after Sanic has finalized them), the check becomes route
    middleware of the guarded websocket routes only, and Sanic's per-route
    middleware is finalized again. Repeatable: Sanic keeps one registration per
    route, and its test clients restart the server for each request.
    """
    for middleware in [m for m in app.request_middleware if m.func is _check_before_upgrade]:
        app.request_middleware.remove(middleware)
    websockets = [route.name for route in app.router.routes if _websocket_guard(route.handler) is not None]
    if websockets:
        app.register_named_middleware(_check_before_upgrade, websockets, "request")
    app.finalize_middleware()


def _deny_over_asgi(transport: MockTransport, reason: str) -> None:
    """Send Sanic's HTTP refusal of a websocket scope the ASGI way.

    Under an ASGI server Sanic sends ``http.response.*`` messages even for a
    websocket scope, which the server refuses (a 500 handshake answer). The
    ASGI websocket denial-response extension takes the same messages under
    a ``websocket.`` prefix; a server without it gets ``websocket.close``,
    which it answers with a bare 403.
    """
    send = transport._send  # the server's ASGI send
    denial = "websocket.http.response" in (transport.scope.get("extensions") or {})

    async def send_denial(message: MutableMapping[str, Any]) -> None:
        kind = message.get("type", "")
        if kind.startswith("http.response."):
            if denial:
                message = {**message, "type": f"websocket.{kind}"}
            elif kind == "http.response.start":
                message = {"type": "websocket.close", "code": POLICY_VIOLATION, "reason": reason}
            else:
                return
        await send(message)

    transport._send = send_denial


#: ``@require_webhook`` / ``@require_webhook(events=[...], secret=..., dedupe=...)``: a Clerk
#: webhook endpoint (see `clerkguard.webhooks`); the event is ``request.ctx.webhook``.
require_webhook: RequireWebhook = build_require_webhook(SanicAdapter())


class ClerkGuard:
    """The Sanic extension: one [`ClerkAuth`][clerkguard.auth.ClerkAuth] per app and its key refresher.

    Args:
        app: The app (or call [`init_app`][clerkguard.sanic.ClerkGuard.init_app] later).
        auth: The [`ClerkAuth`][clerkguard.auth.ClerkAuth] (default: built in
            [`init_app`][clerkguard.sanic.ClerkGuard.init_app] from the app's ``CLERK_*`` config values, then
            the environment).
        check_decorator_order: Refuse to start when a route serves a handler
            that ``require_auth`` wrapped only *after* it was registered (the
            decorator above ``@app.get``: the route would be unguarded).

    The listeners run in every worker process, and Sanic's test clients start
    and stop the server around each request, so both are safe to repeat:
    ``before_server_start`` fetches keys only when none are fresh and starts
    the refresher; ``after_server_stop`` stops it (``ClerkAuth.aclose``), which
    keeps the key cache, so many test-client requests make one JWKS fetch and
    later ones keep verifying (fetching lazily when keys expire).
    """

    def __init__(
        self,
        app: sanic.Sanic[Any, Any] | None = None,
        auth: ClerkAuth | None = None,
        *,
        check_decorator_order: bool = True,
    ) -> None:
        self.auth = auth
        """The ClerkAuth guards of the app use unless given their own."""
        self.check_decorator_order = check_decorator_order
        """Whether startup refuses routes whose guard was applied too late."""
        if app is not None:
            self.init_app(app)

    def init_app(self, app: sanic.Sanic[Any, Any]) -> None:
        """Attach to ``app`` (``app.ctx.clerkguard``) and register the listeners."""
        if self.auth is None:
            self.auth = auth_from_config(app.config)
        setattr(app.ctx, EXTENSION_KEY, self)
        # App-wide until the server starts (see _start): a client that never runs
        # the listeners (Sanic's ASGI test client for websockets) still gets the check.
        app.register_middleware(_check_before_upgrade, "request")
        app.register_listener(self._start, "before_server_start")
        app.register_listener(self._stop, "after_server_stop")

    async def _start(self, app: sanic.Sanic[Any, Any]) -> None:
        auth = self.auth
        assert auth is not None
        if self.check_decorator_order:
            views = {route.name: route.handler for route in app.router.routes}
            misordered = unguarded_views(views)
            if misordered:
                what, fix = _misordered_message(_misordered_views(views, misordered), "of")
                raise ConfigurationError(
                    f"{what}: Sanic registered the bare handler, so the route would be "
                    f"unguarded. Put {fix} below @app.get(...)."
                )
        _narrow_upgrade_check(app)
        # Keys before the first request (bounded by http_timeout; a failure is
        # retried lazily). Finishing the fetch here also means a server stopped
        # right after start can't cancel it mid-flight. Later starts find the
        # keys fresh (or the ClerkAuth closed) and fetch nothing.
        if auth.jwks_uri is not None:
            await auth.keyring.refresh_async()
        auth.keyring.start_async_refresher()

    async def _stop(self, app: sanic.Sanic[Any, Any]) -> None:
        assert self.auth is not None
        await self.auth.aclose()
