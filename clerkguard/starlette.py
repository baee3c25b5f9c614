"""Starlette integration: ``@require_auth``, [`ClerkGuard`][clerkguard.starlette.ClerkGuard], an
``AuthenticationBackend``.

::

    from starlette.applications import Starlette
    from starlette.routing import Route
    from clerkguard.starlette import ClerkGuard, require_auth

    @require_auth(role="admin")
    async def admin(request):
        return JSONResponse({"user_id": request.auth.user_id})

    app = Starlette(routes=[Route("/admin", admin)])
    ClerkGuard(app)  # ClerkAuth() from CLERK_*, key refresher in the app's lifespan

The decorator protects function endpoints (sync ones run in Starlette's
threadpool and verify there; async ones verify on the loop with the async key
fetcher), ``HTTPEndpoint`` methods and websocket function endpoints (refused
before ``accept()``: the same status and JSON body as HTTP through the ASGI
``websocket.http.response`` extension where the server supports it, else a
close with code 1008). The verified session is ``request.auth``
(``scope["auth"]``, where Starlette's own authentication keeps it).

[`ClerkAuthBackend`][clerkguard.starlette.ClerkAuthBackend] is for apps that prefer Starlette's
``AuthenticationMiddleware``, ``request.user`` and ``@requires``: a request
without a token is anonymous, a bad token gets the same 401 as everywhere
(pass [`on_auth_error`][clerkguard.starlette.on_auth_error] as the middleware's ``on_error``).

Glue only: every decision is [`clerkguard.adapters.Guard`][clerkguard.adapters.Guard]'s.
"""

from __future__ import annotations

from .errors import MissingDependencyError

try:
    import starlette  # noqa: F401 - only probing that the extra is installed
except ImportError:  # pragma: no cover - exercised in a venv without Starlette
    raise MissingDependencyError("starlette", "starlette") from None

import functools
import inspect
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol, cast

from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.concurrency import run_in_threadpool
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Scope
from starlette.websockets import WebSocket, WebSocketState
from typing_extensions import Unpack

from ._webhook_guard import RequireWebhook, WebhookGuard, build_require_webhook, wrap_webhook_handler
from .adapters import (
    _ENDPOINT_ONLY,
    Adapter,
    Guard,
    GuardKwargs,
    Preflight,
    RequireAuth,
    _misordered_message,
    asgi_header_values,
    build_require_auth,
    guard_of,
    is_async_callable,
    wrapped_chain,
)
from .auth import ClerkAuth
from .errors import AuthError, ConfigurationError, WebhookError
from .machine import Credential, MachineCredential, MachineTokenType
from .session import Session

if TYPE_CHECKING:
    from .webhooks import WebhookEvent

__all__ = [
    "ClerkAuthBackend",
    "ClerkAuthException",
    "ClerkAuthenticationError",
    "ClerkGuard",
    "ClerkMachine",
    "ClerkUser",
    "StarletteAdapter",
    "allowed_methods",
    "auth_exception_handler",
    "deny_websocket",
    "error_response",
    "misordered_routes",
    "on_auth_error",
    "ordered_methods",
    "require_auth",
    "warm_up",
    "require_webhook",
]

#: ``app.state`` attribute holding the app's [`ClerkGuard`][clerkguard.starlette.ClerkGuard] state.
STATE_ATTRIBUTE = "clerkguard"

#: Close code for a refused websocket when the server can't send an HTTP answer
#: (RFC 6455 7.4.1: 1008 = policy violation).
WS_POLICY_VIOLATION = 1008

#: Methods an ``HTTPEndpoint`` may implement, in Starlette's order.
_ENDPOINT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY")


# -- errors ------------------------------------------------------------------------------------
def error_response(error: AuthError) -> JSONResponse:
    """The JSON answer for ``error``: ``{"error": ..., "reason": ...}`` plus its headers."""
    return JSONResponse(error.to_dict(), status_code=error.status, headers=error.headers())


class ClerkAuthException(HTTPException):
    """A Starlette ``HTTPException`` carrying an [`AuthError`][clerkguard.AuthError].

    Raised where an answer can't be returned (FastAPI dependencies). The
    status and headers are the error's, so even Starlette's default handler
    answers 401/403/503 with ``WWW-Authenticate``; [`ClerkGuard`][clerkguard.starlette.ClerkGuard]
    registers [`auth_exception_handler`][clerkguard.starlette.auth_exception_handler] for the JSON body. An
    app's own handler for the status code (``exception_handlers={401: ...}``) wins.

    Attributes:
        auth_error: The [`AuthError`][clerkguard.AuthError].
    """

    def __init__(self, error: AuthError) -> None:
        super().__init__(status_code=error.status, detail=error.detail, headers=error.headers())
        self.auth_error = error


async def deny_websocket(websocket: WebSocket, error: AuthError) -> None:
    """Refuse a websocket handshake (before ``accept()``) with ``error``'s answer.

    With the ASGI ``websocket.http.response`` extension (uvicorn, hypercorn,
    Starlette's ``TestClient``) the client gets the same status, headers and
    JSON body as an HTTP request; otherwise the handshake is closed with 1008.
    """
    if websocket.application_state is not WebSocketState.CONNECTING:
        await websocket.close(code=WS_POLICY_VIOLATION, reason=error.reason)
    elif "websocket.http.response" in (websocket.scope.get("extensions") or {}):
        await websocket.send_denial_response(error_response(error))
    else:
        await websocket.close(code=WS_POLICY_VIOLATION, reason=error.reason)


async def auth_exception_handler(connection: HTTPConnection, exc: Exception) -> Response | None:
    """Starlette/FastAPI exception handler rendering
    [`ClerkAuthException`][clerkguard.starlette.ClerkAuthException].

    HTTP: the guard's JSON response. Websocket: the handshake is refused
    with [`deny_websocket`][clerkguard.starlette.deny_websocket] (Starlette ignores a websocket handler's
    result).
    """
    error = getattr(exc, "auth_error", None)
    if not isinstance(error, AuthError):  # registered for something else: plain text, like Starlette
        status = getattr(exc, "status_code", 500)
        return PlainTextResponse(str(getattr(exc, "detail", "")), status_code=status)
    if isinstance(connection, WebSocket):
        await deny_websocket(connection, error)
        return None
    return error_response(error)


# -- the adapter -------------------------------------------------------------------------------
#: The app whose state was looked up last, and that state. An app keeps its state
#: for life (``init_app`` refuses a second one), so most requests find it here
#: instead of going through ``State.__getattr__`` (about half a microsecond).
_last_state: tuple[weakref.ref[Any], _AppState] | None = None


def _app_state(connection: HTTPConnection) -> _AppState | None:
    global _last_state
    app = connection.scope.get("app")
    last = _last_state
    if last is not None and app is not None and last[0]() is app:
        return last[1]
    state = getattr(getattr(app, "state", None), STATE_ATTRIBUTE, None)
    if not isinstance(state, _AppState):
        return None
    try:
        _last_state = (weakref.ref(app), state)
    except TypeError:  # an app that can't be weakly referenced: no memo
        pass
    return state


class StarletteAdapter(Adapter[HTTPConnection]):
    """clerkguard's hooks for Starlette (and FastAPI) requests and websockets.

    The [`ClerkAuth`][clerkguard.ClerkAuth] is the guard's ``auth=``, else this
    adapter's, else the one of the app's [`ClerkGuard`][clerkguard.starlette.ClerkGuard].
    """

    def header_values(self, request: HTTPConnection, name: str) -> Sequence[str]:
        """Every value of header ``name`` (lower case), one per header line.

        Read from the raw ASGI ``scope["headers"]`` (names are lower case by
        the ASGI spec): ``request.headers`` would build a multidict per request.
        """
        return asgi_header_values(request.scope, name)

    def header(self, request: HTTPConnection, name: str) -> str | None:
        """The first value of a request header (case-insensitive), or ``None``."""
        wanted = name.lower().encode("latin-1")
        for key, value in request.scope.get("headers", ()):
            if key == wanted:
                return bytes(value).decode("latin-1")
        return None

    def method(self, request: HTTPConnection) -> str:
        """The HTTP method (a websocket handshake counts as ``GET``)."""
        return str(request.scope.get("method", "GET")).upper()

    def is_websocket(self, request: HTTPConnection) -> bool:
        """Whether ``request`` is a websocket handshake."""
        return request.scope.get("type") == "websocket"

    def options_response(self, request: HTTPConnection) -> Response:
        """The default answer to ``OPTIONS``: 204 with an ``Allow`` header."""
        return Response(status_code=204, headers={"Allow": ", ".join(allowed_methods(request.scope))})

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> HTTPConnection:
        """The request (or websocket) among the endpoint's arguments.

        A function endpoint gets it first, an ``HTTPEndpoint`` method after ``self``.
        """
        if args and type(args[0]) is Request:  # the common case, without the ABC isinstance
            return args[0]
        for value in args:
            if isinstance(value, HTTPConnection):
                return value
        for value in kwargs.values():
            if isinstance(value, HTTPConnection):
                return value
        raise TypeError("require_auth: the endpoint was called without a Starlette request or websocket")

    def store(self, request: HTTPConnection, session: Session | None) -> None:
        """``request.auth`` = the session (``None`` for an anonymous optional request)."""
        request.scope["auth"] = session

    def reject(self, request: HTTPConnection, error: AuthError) -> Any:
        """The JSON error response (websockets are refused by the wrapper instead)."""
        return error_response(error)

    def auth_for(self, request: HTTPConnection) -> ClerkAuth:
        """This adapter's ClerkAuth, else the app's [`ClerkGuard`][clerkguard.starlette.ClerkGuard]'s."""
        if self.auth is not None:
            return self.auth
        state = _app_state(request)
        if state is not None:
            return state.auth
        raise ConfigurationError(
            "no ClerkAuth for this app: call ClerkGuard(app) (clerkguard.starlette or "
            "clerkguard.fastapi), or pass auth= to require_auth/requires_auth"
        )


def allowed_methods(scope: Scope) -> list[str]:
    """The methods served at the request's path, ``OPTIONS`` included (for ``Allow``).

    The matched route's methods, plus those of the router's other routes for
    the same path (FastAPI registers ``@app.get`` and ``@app.options`` as two
    routes); an ``HTTPEndpoint``'s methods are those it defines.
    """
    methods: set[str] = {"OPTIONS"}
    route_methods = getattr(scope.get("route"), "methods", None)
    if route_methods:
        methods.update(route_methods)
    endpoint = scope.get("endpoint")
    if inspect.isclass(endpoint) and issubclass(endpoint, HTTPEndpoint):
        methods.update(m for m in _ENDPOINT_METHODS if getattr(endpoint, m.lower(), None) is not None)
        if "GET" in methods:
            methods.add("HEAD")
    for route in getattr(scope.get("router"), "routes", ()):
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] is not Match.NONE:
            methods.update(route.methods)
    return ordered_methods(methods)


def ordered_methods(methods: Iterable[str]) -> list[str]:
    """Methods in Starlette's order (``GET, HEAD, POST, ...``), unknown ones last."""
    given = set(methods)
    return [m for m in _ENDPOINT_METHODS if m in given] + sorted(given - set(_ENDPOINT_METHODS))


# -- the decorator -----------------------------------------------------------------------------------
#: Endpoints ``@require_auth``/``@require_webhook`` wrapped (weakly; here and in
#: ``clerkguard.fastapi``), with the decorator's name. A route serving one of them
#: *unwrapped* had that decorator above its route decorator.
_GUARDED: weakref.WeakKeyDictionary[Callable[..., Any], str] = weakref.WeakKeyDictionary()


def _remember(handler: Callable[..., Any], decorator: str = "require_auth") -> None:
    # The whole __wrapped__ chain: with another functools.wraps decorator between
    # the guard and the route decorator, the route registered the innermost function.
    for fn in wrapped_chain(handler):
        try:
            _GUARDED[fn] = decorator
        except TypeError:  # not weak-referenceable: nothing to track
            pass


def _takes_websocket(handler: Callable[..., Any]) -> bool:
    """A websocket endpoint: its first non-``self`` parameter is named or typed ``websocket``."""
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    if parameters and parameters[0].name == "self":
        parameters = parameters[1:]
    if not parameters:
        return False
    first = parameters[0]
    annotation = first.annotation
    return first.name == "websocket" or annotation is WebSocket or annotation == "WebSocket"


def _wrap(handler: Callable[..., Any], guard: Guard[Any]) -> Callable[..., Any]:
    """Wrap a Starlette endpoint (function, ``HTTPEndpoint`` method, websocket function)."""
    if inspect.isclass(handler):
        raise TypeError(
            "@require_auth decorates endpoint functions and HTTPEndpoint methods, not classes: "
            "put it on each method (async def get(self, request): ...)"
        )
    adapter = cast(StarletteAdapter, guard.adapter)
    websocket = _takes_websocket(handler)
    _remember(handler)
    if websocket and not is_async_callable(handler):
        raise TypeError("websocket endpoints are async; @require_auth can't wrap a sync one")

    if websocket or is_async_callable(handler):

        @functools.wraps(handler)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            request = adapter.find_request(args, kwargs)
            try:
                session = guard.cached(request)  # the common request, without awaiting
                if session is None:
                    session = await guard.acheck(request)
            except AuthError as error:
                if isinstance(request, WebSocket):
                    await deny_websocket(request, error)
                    return None
                return adapter.reject(request, error)
            except Preflight:
                return adapter.options_response(request)
            adapter.store(request, session)
            return await handler(*args, **kwargs)

        async_wrapper.__clerkguard__ = guard  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(handler)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        # Starlette runs sync endpoints in its threadpool: a cold key fetch
        # here blocks a worker thread, never the event loop.
        request = adapter.find_request(args, kwargs)
        try:
            session = guard.cached(request)  # the common request, decided at once
            if session is None:
                session = guard.check(request)
        except AuthError as error:
            return adapter.reject(request, error)
        except Preflight:
            return adapter.options_response(request)
        adapter.store(request, session)
        return handler(*args, **kwargs)

    sync_wrapper.__clerkguard__ = guard  # type: ignore[attr-defined]
    return sync_wrapper


#: ``@require_auth`` / ``@require_auth(authorize=..., role=..., optional=..., auth=...)`` for
#: Starlette endpoint functions, ``HTTPEndpoint`` methods and websocket endpoints.
require_auth: RequireAuth = build_require_auth(StarletteAdapter(), wrap=_wrap)


# -- webhooks ----------------------------------------------------------------------------------------
#: ``request.state`` attribute holding the verified webhook event.
WEBHOOK_STATE_ATTRIBUTE = "clerk_webhook"


class StarletteWebhookAdapter(StarletteAdapter):
    """The Starlette hooks plus the three ``require_webhook`` needs.

    The body is awaited, so every wrapper is a coroutine function; a sync
    endpoint then runs in Starlette's threadpool, as Starlette runs it.
    """

    async_only = True

    async def abody(self, request: HTTPConnection, limit: int) -> bytes:
        """The raw body (``Request.body()`` caches it: the endpoint may read it again)."""
        if not isinstance(request, Request):
            raise WebhookError("body-missing", "a websocket carries no webhook body")
        return await request.body()

    def json_response(self, request: HTTPConnection, status: int, content: Any) -> Response:
        """A JSON response."""
        return JSONResponse(dict(content), status_code=status)

    def store_webhook(self, request: HTTPConnection, event: WebhookEvent) -> None:
        """``request.state.clerk_webhook`` = the verified event."""
        setattr(request.state, WEBHOOK_STATE_ATTRIBUTE, event)

    async def call_async(
        self, handler: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """An async endpoint awaited; a sync one in the threadpool."""
        if is_async_callable(handler):
            return await handler(*args, **kwargs)
        return await run_in_threadpool(handler, *args, **kwargs)


def _wrap_webhook(handler: Callable[..., Any], guard: WebhookGuard[Any]) -> Callable[..., Any]:
    """The core's webhook wrapper, remembered for the decorator-order check of `ClerkGuard`."""
    _remember(handler, "require_webhook")
    return wrap_webhook_handler(handler, guard)


#: ``@require_webhook`` / ``@require_webhook(events=[...], secret=..., dedupe=...)``: a Clerk
#: webhook endpoint (see `clerkguard.webhooks`); the event is ``request.state.clerk_webhook``.
require_webhook: RequireWebhook = build_require_webhook(StarletteWebhookAdapter(), wrap=_wrap_webhook)


# -- AuthenticationMiddleware backend ----------------------------------------------------------
class ClerkUser(BaseUser):
    """``request.user`` under [`ClerkAuthBackend`][clerkguard.starlette.ClerkAuthBackend]: a signed-in Clerk
    user.

    Attributes:
        session: The verified [`Session`][clerkguard.Session].
    """

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def is_authenticated(self) -> bool:
        """Always ``True`` (anonymous requests get Starlette's ``UnauthenticatedUser``)."""
        return True

    @property
    def display_name(self) -> str:
        """The Clerk user id (Clerk's token carries no name)."""
        return self.session.user_id

    @property
    def identity(self) -> str:
        """The Clerk user id."""
        return self.session.user_id

    @property
    def user_id(self) -> str:
        """The Clerk user id (``user_...``)."""
        return self.session.user_id

    @property
    def credential(self) -> Session:
        """The verified credential: here the [`Session`][clerkguard.Session] (a
        [`ClerkMachine`][clerkguard.starlette.ClerkMachine] holds a machine credential)."""
        return self.session

    def __repr__(self) -> str:
        return f"ClerkUser({self.session.user_id!r})"


class ClerkMachine(BaseUser):
    """``request.user`` under a [`ClerkAuthBackend`][clerkguard.starlette.ClerkAuthBackend] that accepts
    machine tokens (``accepts_token=``): an M2M token, OAuth access token or API key.

    Attributes:
        credential: The verified [`MachineCredential`][clerkguard.MachineCredential].
    """

    __slots__ = ("credential",)

    def __init__(self, credential: MachineCredential) -> None:
        self.credential = credential

    @property
    def is_authenticated(self) -> bool:
        """Always ``True`` (anonymous requests get Starlette's ``UnauthenticatedUser``)."""
        return True

    @property
    def display_name(self) -> str:
        """Whom the credential acts for: ``mch_...``, ``user_...`` or ``org_...``."""
        return self.credential.subject

    @property
    def identity(self) -> str:
        """Whom the credential acts for (its subject)."""
        return self.credential.subject

    @property
    def token_type(self) -> MachineTokenType:
        """``"m2m_token"``, ``"oauth_token"`` or ``"api_key"``."""
        return self.credential.token_type

    def __repr__(self) -> str:
        return f"ClerkMachine({self.credential.token_type!r}, {self.credential.subject!r})"


class ClerkAuthenticationError(AuthenticationError):
    """The ``AuthenticationError`` [`ClerkAuthBackend`][clerkguard.starlette.ClerkAuthBackend] raises for a
    bad token.

    Attributes:
        error: The [`AuthError`][clerkguard.AuthError] (render it with
            [`on_auth_error`][clerkguard.starlette.on_auth_error]).
    """

    def __init__(self, error: AuthError) -> None:
        super().__init__(error.reason)
        self.error = error


#: Clerk's signed-out state (a stale ``__session`` without ``__client_uat``): anonymous, not an error.
_SIGNED_OUT = "session-token-without-client-uat"


class ClerkAuthBackend(AuthenticationBackend):
    """Starlette ``AuthenticationBackend`` verifying Clerk session tokens.

    ::

        Middleware(AuthenticationMiddleware, backend=ClerkAuthBackend(), on_error=on_auth_error)

    No token: anonymous (``request.user.is_authenticated`` is ``False``), and
    so is a signed-out browser (a leftover session cookie without Clerk's
    ``__client_uat``). A valid token: ``request.user`` is a [`ClerkUser`][clerkguard.starlette.ClerkUser],
    ``request.auth`` Starlette's ``AuthCredentials`` with the scopes
    ``"authenticated"``, the organization role (``org:admin``) and the
    organization permissions, so ``@requires("authenticated")`` and
    ``@requires("org:reports:read")`` work. With ``accepts_token=`` machine
    kinds (the values and meaning of ``require_auth``'s; default session
    tokens only, read from the ``Authorization: Bearer`` header only), a
    machine credential makes ``request.user`` a
    [`ClerkMachine`][clerkguard.starlette.ClerkMachine] with the scopes
    ``"authenticated"`` plus the credential's own. A token that fails a check
    raises [`ClerkAuthenticationError`][clerkguard.starlette.ClerkAuthenticationError], which
    [`on_auth_error`][clerkguard.starlette.on_auth_error] renders as the 401 (403, 503) every guard answers.

    Args:
        options: ``auth=`` (default: the app's [`ClerkGuard`][clerkguard.starlette.ClerkGuard]'s
            [`ClerkAuth`][clerkguard.ClerkAuth]) and the token options of
            ``require_auth``: ``accepts_token``, ``token_sources``,
            ``cookie_names``, ``check_client_uat``, ``check_origin``,
            ``trusted_origins``. (Rules, ``authorize``, ``optional`` and
            ``allow_options`` belong to the endpoints: ``@requires`` or
            ``@require_auth``.)
    """

    def __init__(self, **options: Unpack[GuardKwargs]) -> None:
        refused = sorted(set(options) & _ENDPOINT_ONLY)
        if refused:
            raise TypeError(
                f"ClerkAuthBackend() does not take {', '.join(refused)}: use @requires or @require_auth"
            )
        # optional: no token is anonymous. allow_options=False: an OPTIONS that
        # carries credentials is authenticated like any request (a CORS
        # preflight carries none, so it is simply anonymous).
        options["optional"] = True
        options["allow_options"] = False
        self.guard: Guard[HTTPConnection] = require_auth.guard(**options)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        """``(credentials, user)`` for a verified token; ``None`` (anonymous) without one."""
        try:
            session = await self.guard.acheck(conn)
        except AuthError as error:
            if error.reason == _SIGNED_OUT:
                return None
            raise ClerkAuthenticationError(error) from None
        if session is None:
            return None
        credential: Credential = session
        if isinstance(credential, MachineCredential):
            return AuthCredentials(["authenticated", *credential.scopes]), ClerkMachine(credential)
        scopes = ["authenticated"]
        if session.org_role:
            scopes.append(session.org_role)
        scopes.extend(session.org_permissions)
        return AuthCredentials(scopes), ClerkUser(session)


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """``on_error`` for ``AuthenticationMiddleware``: the guard's JSON 401/503 answer."""
    if isinstance(exc, ClerkAuthenticationError):
        return error_response(exc.error)
    return PlainTextResponse(str(exc), status_code=400)  # another backend's error: Starlette's default


# -- the app's ClerkAuth and lifecycle ----------------------------------------------------------------
class _AppState:
    """What [`ClerkGuard`][clerkguard.starlette.ClerkGuard] keeps on ``app.state.clerkguard``."""

    __slots__ = ("auth",)

    def __init__(self, auth: ClerkAuth) -> None:
        self.auth = auth


class _Lifespan(Protocol):
    def __call__(self, app: Any) -> AbstractAsyncContextManager[Any]: ...


async def warm_up(auth: ClerkAuth) -> None:
    """Fetch keys before the first request, then keep them fresh in the background.

    Bounded by ``http_timeout``; a failure is logged by the keyring and the
    first requests fetch lazily (503 until keys arrive).
    """
    if auth.jwks_uri is not None:
        await auth.keyring.refresh_async()
    auth.keyring.start_async_refresher()


def _wrap_lifespan(app: Starlette, auth: ClerkAuth) -> None:
    """Run the key refresher inside the app's own lifespan (which stays in place)."""
    original = cast(_Lifespan, app.router.lifespan_context)

    @asynccontextmanager
    async def clerkguard_lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        await warm_up(auth)
        try:
            async with original(asgi_app) as state:
                yield state
        finally:
            await auth.aclose()

    app.router.lifespan_context = clerkguard_lifespan


def _endpoints(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            # FastAPI >= 0.16x keeps an included router as one lazy route.
            context_prefix = str(getattr(getattr(route, "include_context", None), "prefix", ""))
            yield from _endpoints(included.routes, prefix + context_prefix)
            continue
        path = prefix + str(getattr(route, "path", ""))
        endpoint = getattr(route, "endpoint", None)
        if endpoint is not None:
            yield path, endpoint
        yield from _endpoints(getattr(route, "routes", None) or (), path)


def misordered_routes(app: Starlette) -> list[str]:
    """Paths whose route serves an endpoint that ``require_auth`` wrapped only afterwards.

    FastAPI's ``@app.get`` registers the function and returns it unchanged, so
    ``@require_auth`` written *above* it wraps a copy nobody calls: the route
    serves the bare, unguarded function.
    """
    return sorted(_misordered(app))


def _misordered(app: Starlette) -> dict[str, str]:
    """``path -> the decorator above its route decorator``."""
    found = {}
    for path, endpoint in _endpoints(app.router.routes):
        try:
            decorator = _GUARDED.get(endpoint)
        except TypeError:
            continue
        if decorator is not None and guard_of(endpoint) is None:
            found[path] = decorator
    return found


def _refuse_misordered(app: Starlette) -> None:
    misordered = _misordered(app)
    if misordered:
        what, fix = _misordered_message(misordered)
        raise ConfigurationError(
            f"{what}: the route registered the unguarded function. Put {fix} below @app.get(...)."
        )


def _check_order(app: ASGIApp, /, routes_of: Starlette) -> ASGIApp:
    """A "middleware" that adds nothing per request: Starlette builds its middleware
    stack on the first ASGI call (lifespan startup or first request), so this
    refuses a misordered app then, with every route registered."""
    _refuse_misordered(routes_of)
    return app


class ClerkGuard:
    """Clerk authentication for a Starlette app: ``ClerkGuard(app)``.

    Keeps the app's [`ClerkAuth`][clerkguard.ClerkAuth] on
    ``app.state.clerkguard`` (every guard of the app uses it unless given its
    own ``auth=``), starts the key refresher with the app's lifespan and
    stops it at shutdown (wrapping the app's own lifespan, which still runs),
    registers [`auth_exception_handler`][clerkguard.starlette.auth_exception_handler] for
    [`ClerkAuthException`][clerkguard.starlette.ClerkAuthException], and refuses to start (or serve) an app
    where ``@require_auth`` wrapped an endpoint after its route registered it (see
    [`misordered_routes`][clerkguard.starlette.misordered_routes]).

    Args:
        app: The app to initialise now (or later with [`init_app`][clerkguard.starlette.ClerkGuard.init_app]).
        auth: The ClerkAuth; default ``ClerkAuth()`` from the ``CLERK_*``
            environment variables, built by [`init_app`][clerkguard.starlette.ClerkGuard.init_app].
        manage_lifecycle: Run the key refresher in the app's lifespan.
    """

    #: The module's decorator, for ``guard.require_auth`` style.
    require_auth: RequireAuth = require_auth

    def __init__(
        self, app: Starlette | None = None, auth: ClerkAuth | None = None, *, manage_lifecycle: bool = True
    ) -> None:
        if auth is not None and not isinstance(auth, ClerkAuth):
            raise ConfigurationError("auth must be a clerkguard.ClerkAuth")
        self.auth = auth
        self.manage_lifecycle = manage_lifecycle
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Starlette, auth: ClerkAuth | None = None) -> ClerkAuth:
        """Configure ``app``; returns the [`ClerkAuth`][clerkguard.ClerkAuth] it uses."""
        if getattr(app.state, STATE_ATTRIBUTE, None) is not None:
            raise ConfigurationError("ClerkGuard is already initialised on this app")
        resolved = auth or self.auth or ClerkAuth()
        setattr(app.state, STATE_ATTRIBUTE, _AppState(resolved))
        # Typed by Starlette as an HTTP or a websocket handler; this one is both.
        app.add_exception_handler(ClerkAuthException, cast(Any, auth_exception_handler))
        if self.manage_lifecycle:
            _wrap_lifespan(app, resolved)
        _refuse_misordered(app)
        app.add_middleware(_check_order, routes_of=app)
        return resolved

    @staticmethod
    def auth_for(app: Starlette) -> ClerkAuth:
        """The [`ClerkAuth`][clerkguard.ClerkAuth] of an initialised ``app``."""
        state = getattr(app.state, STATE_ATTRIBUTE, None)
        if not isinstance(state, _AppState):
            raise ConfigurationError("ClerkGuard is not initialised on this app")
        return state.auth
