"""Litestar integration: ``@require_auth``, a native guard, and
[`ClerkPlugin`][clerkguard.litestar.ClerkPlugin].

Three ways to protect a handler, all deciding through the same
[`Guard`][clerkguard.adapters.Guard]:

* the decorator, placed **below** the route decorator (it wraps the function
  before Litestar reads its signature):

      @get("/me")
      @require_auth(role="admin")
      async def me(request: Request) -> dict[str, str]:
          return {"user_id": request.auth.user_id}

* the native guard, at any layer (app, router, controller, handler):

      Router("/admin", route_handlers=[...], guards=[requires_auth(role="admin")])

* the dependency the plugin registers: a handler parameter
  ``clerk_session: Session`` is only satisfied by a verified session.

[`ClerkPlugin`][clerkguard.litestar.ClerkPlugin] wires the rest: the key refresher's lifecycle, the
``clerk_session`` dependency, an OpenAPI bearer security scheme (added to
every guarded operation), and exception handlers that render errors as
``{"error": ..., "reason": ..., "detail": ...}`` with ``WWW-Authenticate``/``Retry-After``.
The decorator answers with that body even without the plugin; the guard and
the dependency raise Litestar exceptions, which need the plugin (or your own
exception handler) for that body.

The verified session is ``request.auth``; ``request.user`` is the same
session unless the plugin has a ``user_loader``.
"""

from __future__ import annotations

try:
    import litestar  # noqa: F401 - only probing that the extra is installed
except ImportError as exc:  # tested by hiding litestar from sys.modules
    from .errors import MissingDependencyError

    raise MissingDependencyError("litestar", "litestar") from exc

import asyncio
import concurrent.futures
import copy
import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from asgiref.sync import async_to_sync
from litestar import Request, Response
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.enums import MediaType, ScopeType
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ServiceUnavailableException,
)
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPlugin, ReceiveRoutePlugin
from litestar.routes import BaseRoute
from litestar.serialization import encode_json
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.helpers import unwrap_partial
from typing_extensions import Unpack

from ._webhook_guard import (
    WEBHOOK_PARAMETER,
    RequireWebhook,
    WebhookGuard,
    build_require_webhook,
    signature_webhook_wrapper,
)
from .adapters import (
    Adapter,
    Guard,
    GuardKwargs,
    Preflight,
    RequireAuth,
    asgi_header_values,
    build_require_auth,
    is_async_callable,
    wrapped_chain,
)
from .auth import ClerkAuth
from .errors import AuthError, ConfigurationError, WebhookError
from .machine import Credential
from .session import Session

if TYPE_CHECKING:
    from .webhooks import WebhookEvent

__all__ = [
    "ClerkAuthException",
    "ClerkPlugin",
    "LitestarAdapter",
    "UserLoader",
    "auth_exception_handler",
    "error_response",
    "provide_credential",
    "require_auth",
    "require_webhook",
    "requires_auth",
    "to_exception",
]

F = TypeVar("F", bound=Callable[..., Any])

#: ``user_loader(session, connection)`` -> the value of ``request.user`` (sync or async).
UserLoader = Callable[[Session, ASGIConnection[Any, Any, Any, Any]], Any]

#: Name of the OpenAPI security scheme the plugin registers.
SECURITY_SCHEME = "ClerkBearer"


class _GuardFunction(Protocol):
    """A Litestar guard carrying the clerkguard [`Guard`][clerkguard.adapters.Guard] it runs."""

    __clerkguard__: Guard[Any]
    exclude_opt_key: str

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None: ...


# -- errors ---------------------------------------------------------------------------------
def error_response(error: AuthError) -> Response[dict[str, str]]:
    """The JSON answer for ``error``: ``{"error": ..., "reason": ..., "detail": ...}`` plus its headers."""
    return Response(
        content=error.to_dict(),
        status_code=error.status,
        headers=error.headers(),
        media_type=MediaType.JSON,
    )


class ClerkAuthException(HTTPException):
    """Mixin of the exceptions the guard and the dependency raise; carries the AuthError."""

    auth_error: AuthError


class _NotAuthorized(ClerkAuthException, NotAuthorizedException):
    pass


class _PermissionDenied(ClerkAuthException, PermissionDeniedException):
    pass


class _KeysUnavailable(ClerkAuthException, ServiceUnavailableException):
    pass


class _BadRequest(ClerkAuthException, ClientException):
    pass


def to_exception(error: AuthError) -> ClerkAuthException:
    """``error`` as a Litestar exception (401/403/503) with the same headers and body."""
    cls: type[ClerkAuthException]
    if error.status == 403:
        cls = _PermissionDenied
    elif error.status == 400:  # require_webhook's refusals
        cls = _BadRequest
    elif error.status == 503:
        cls = _KeysUnavailable
    else:
        cls = _NotAuthorized
    exc = cls(detail=error.detail, headers=error.headers(), extra=error.to_dict())
    exc.auth_error = error
    return exc


def auth_exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Litestar exception handler rendering clerkguard's errors like the decorator does.

    [`ClerkPlugin`][clerkguard.litestar.ClerkPlugin] registers it for
    [`ClerkAuthException`][clerkguard.litestar.ClerkAuthException]; register it yourself if you use
    [`requires_auth`][clerkguard.litestar.requires_auth] without the plugin.
    """
    error = getattr(exc, "auth_error", None)
    if not isinstance(error, AuthError):  # registered for something else: keep Litestar's shape
        status = getattr(exc, "status_code", 500)
        return Response(content={"status_code": status, "detail": str(exc)}, status_code=status)
    return error_response(error)


# -- state on the connection --------------------------------------------------------------------
def _plugin_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ClerkPlugin | None:
    try:
        return connection.app.plugins.get(ClerkPlugin)
    except KeyError:
        return None


def _user_loader(connection: ASGIConnection[Any, Any, Any, Any]) -> UserLoader | None:
    plugin = _plugin_of(connection)
    return plugin.user_loader if plugin is not None else None


def _set(scope: Scope, session: Session | None, user: Any) -> None:
    # Litestar's own AuthenticationMiddleware stores here; request.auth/.user read it.
    scope["auth"] = session
    scope["user"] = user


async def _store_async(connection: ASGIConnection[Any, Any, Any, Any], session: Session | None) -> None:
    loader = _user_loader(connection)
    user: Any = session
    if session is not None and loader is not None:
        user = loader(session, connection)
        if inspect.isawaitable(user):
            user = await user
    _set(connection.scope, session, user)


def _store_sync(connection: ASGIConnection[Any, Any, Any, Any], session: Session | None) -> None:
    loader = _user_loader(connection)
    user: Any = session
    if session is not None and loader is not None:
        user = loader(session, connection)
        if inspect.isawaitable(user):
            user = _await_sync(user)
    _set(connection.scope, session, user)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _await_sync(awaitable: Awaitable[Any]) -> Any:
    """Wait for ``awaitable`` from sync code, on or off an event loop thread.

    In a worker thread (``sync_to_thread=True``) asgiref bridges as usual. A
    sync handler with ``sync_to_thread=False`` runs on the event loop thread,
    where asgiref refuses (and awaiting is impossible): the coroutine runs to
    completion on a private loop in a helper thread, as asgiref would do
    with no loop around. The event loop waits meanwhile, as it does for any
    blocking call in such a handler.
    """
    if not _on_event_loop():
        return async_to_sync(_await)(awaitable)
    with concurrent.futures.ThreadPoolExecutor(1, "clerkguard-await") as pool:
        return pool.submit(asyncio.run, _await(awaitable)).result()


# -- the adapter --------------------------------------------------------------------------------
class LitestarAdapter(Adapter[ASGIConnection[Any, Any, Any, Any]]):
    """clerkguard's hooks for Litestar (a `Request` or, in guards, any connection).

    The [`ClerkAuth`][clerkguard.ClerkAuth] is the guard's ``auth=``, else this
    adapter's, else the one of the app's [`ClerkPlugin`][clerkguard.litestar.ClerkPlugin].
    """

    def header(self, request: ASGIConnection[Any, Any, Any, Any], name: str) -> str | None:
        """A request header (case-insensitive), read from the raw ASGI scope.

        ``request.headers`` parses every header into a multidict on first use
        (microseconds per request); the guard needs one, so it scans the raw
        list (ASGI requires lower-case names).
        """
        wanted = name.lower().encode("latin-1")
        for key, value in request.scope.get("headers", ()):
            if key == wanted:
                return bytes(value).decode("latin-1")
        return None

    def header_values(self, request: ASGIConnection[Any, Any, Any, Any], name: str) -> Sequence[str]:
        """Every line of a header, from the raw ASGI scope (ASGI names are lower case)."""
        return asgi_header_values(request.scope, name)

    def is_websocket(self, request: ASGIConnection[Any, Any, Any, Any]) -> bool:
        """Whether this is a websocket handshake."""
        return request.scope.get("type") == ScopeType.WEBSOCKET

    def options_response(self, request: ASGIConnection[Any, Any, Any, Any]) -> Response[Any]:
        """Litestar's own ``OPTIONS`` answer: ``204`` with the path's methods in ``Allow``."""
        template = request.scope.get("path_template")
        methods: set[str] = {"OPTIONS"}
        for route in request.app.routes:
            if route.path == template:
                methods.update(getattr(route, "methods", ()))
        handler = request.scope.get("route_handler")
        if isinstance(handler, HTTPRouteHandler):
            methods.update(handler.http_methods)
        return Response(
            content=None,
            status_code=204,
            headers={"Allow": ", ".join(sorted(methods))},
            media_type=MediaType.TEXT,
        )

    def method(self, request: ASGIConnection[Any, Any, Any, Any]) -> str:
        """The HTTP method (a websocket handshake counts as ``GET``)."""
        return str(request.scope.get("method", "GET")).upper()

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request[Any, Any, Any]:
        """The ``request`` keyword: the decorator puts it in every handler's signature."""
        return cast("Request[Any, Any, Any]", kwargs["request"])

    def store(self, request: ASGIConnection[Any, Any, Any, Any], session: Session | None) -> None:
        """``request.auth`` = the session; ``request.user`` = it or the loaded user."""
        _store_sync(request, session)

    def reject(self, request: ASGIConnection[Any, Any, Any, Any], error: AuthError) -> Any:
        """A ready JSON response, so the body is right even without the plugin.

        A handler with a return DTO would push that response through the DTO
        (Litestar does, and fails with a 500), so there the exception is raised
        instead; the plugin's exception handler renders it identically.
        """
        handler = request.scope.get("route_handler")
        if isinstance(handler, HTTPRouteHandler) and handler.resolve_return_dto() is not None:
            raise to_exception(error)
        return error_response(error)

    def await_sync(self, awaitable: Awaitable[Any]) -> Any:
        """An async ``authorize`` from a sync handler, even one on the event loop."""
        return _await_sync(awaitable)

    def auth_for(self, request: ASGIConnection[Any, Any, Any, Any]) -> ClerkAuth:
        """This adapter's ClerkAuth, else the app's [`ClerkPlugin`][clerkguard.litestar.ClerkPlugin]'s."""
        if self.auth is not None:
            return self.auth
        plugin = _plugin_of(request)
        if plugin is not None and plugin.auth is not None:
            return plugin.auth
        raise ConfigurationError(
            "no ClerkAuth for this Litestar app: add ClerkPlugin(...) to plugins=[...] "
            "or pass auth= to require_auth/requires_auth"
        )

    # -- webhooks ------------------------------------------------------------------------------
    async def abody(self, request: ASGIConnection[Any, Any, Any, Any], limit: int) -> bytes:
        """The raw body (the route's ``request_max_body_size`` also applies while reading)."""
        if not isinstance(request, Request):
            raise WebhookError("body-missing", "a websocket carries no webhook body")
        try:
            return await request.body()
        except HTTPException as exc:
            if exc.status_code == 413:
                raise WebhookError("body-too-large", "the body is over the size limit") from None
            raise

    def json_response(
        self, request: ASGIConnection[Any, Any, Any, Any], status: int, content: Any
    ) -> Response[Any]:
        """A JSON response."""
        return Response(content=dict(content), status_code=status, media_type=MediaType.JSON)

    def store_webhook(self, request: ASGIConnection[Any, Any, Any, Any], event: WebhookEvent) -> None:
        """``request.state.clerk_webhook`` = the verified event (also injected as ``webhook``)."""
        request.state[WEBHOOK_STATE_KEY] = event


# -- the decorator ----------------------------------------------------------------------------------


def _wrap(handler: Callable[..., Any], guard: Guard[Any]) -> Callable[..., Any]:
    """Wrap a Litestar handler function, keeping its kind and (parsed) signature."""
    if any(isinstance(fn, BaseRouteHandler) for fn in wrapped_chain(handler)):
        # The decorator saw a route handler (perhaps behind another functools.wraps
        # decorator), so it sits ABOVE @get(...): Litestar
        # already captured the unguarded function. Refuse rather than bypass.
        raise TypeError(
            "@require_auth must be placed below the Litestar route decorator "
            "(@get(...) first, then @require_auth), or use guards=[requires_auth(...)]"
        )
    adapter = guard.adapter
    signature = inspect.signature(handler)
    if "socket" in signature.parameters:
        # Websocket handlers get `socket`, never `request`, and answer no Response.
        raise TypeError(
            "@require_auth protects HTTP handlers; use guards=[requires_auth(...)] for websockets"
        )
    takes_request = "request" in signature.parameters
    parameters = list(signature.parameters.values())
    if not takes_request:
        # Litestar injects `request` only if the signature asks for it, and it is a
        # reserved kwarg, so it stays out of the OpenAPI parameters.
        injected = inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        at = len(parameters)
        if parameters and parameters[-1].kind is inspect.Parameter.VAR_KEYWORD:
            at -= 1
        parameters.insert(at, injected)

    wrapper: Callable[..., Any]
    if is_async_callable(handler):

        @functools.wraps(handler)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            request = kwargs["request"] if takes_request else kwargs.pop("request")
            try:
                session = guard.cached(request)  # the common request, without awaiting
                if session is None:
                    session = await guard.acheck(request)
            except AuthError as error:
                return adapter.reject(request, error)
            except Preflight:
                return adapter.options_response(request)
            if session is None or _user_loader(request) is None:
                _set(request.scope, session, session)  # no loader to await: no coroutine
            else:
                await _store_async(request, session)
            return await handler(*args, **kwargs)

        wrapper = async_wrapper
    else:

        @functools.wraps(handler)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            request = kwargs["request"] if takes_request else kwargs.pop("request")
            try:
                session = guard.cached(request)  # the common request, decided at once
                if session is None:
                    session = guard.check(request)
            except AuthError as error:
                return adapter.reject(request, error)
            except Preflight:
                return adapter.options_response(request)
            _store_sync(request, session)
            return handler(*args, **kwargs)

        wrapper = sync_wrapper

    # Litestar reads inspect.signature (which stops at __signature__) and the
    # type hints of __annotations__; functools.wraps shares the handler's dict.
    target: Any = wrapper
    target.__signature__ = signature.replace(parameters=parameters)
    annotations = dict(getattr(handler, "__annotations__", {}))
    if not takes_request:
        annotations["request"] = Request
    target.__annotations__ = annotations
    target.__clerkguard__ = guard
    return wrapper


#: ``@require_auth`` / ``@require_auth(authorize=..., role=..., optional=...)`` for
#: Litestar handler functions and Controller methods; place it below ``@get(...)``.
require_auth: RequireAuth = build_require_auth(LitestarAdapter(), wrap=_wrap)


# -- webhooks ---------------------------------------------------------------------------------------
#: Key of ``request.state`` holding the verified webhook event.
WEBHOOK_STATE_KEY = "clerk_webhook"


def _wrap_webhook(handler: Callable[..., Any], guard: WebhookGuard[Any]) -> Callable[..., Any]:
    """Wrap a Litestar handler for ``require_webhook``: always a coroutine function.

    The body must be awaited, so even a sync handler gets an async wrapper;
    the sync handler then runs in a worker thread (as ``sync_to_thread=True``
    would). A ``webhook`` parameter is filled with the event and hidden from
    Litestar's signature parsing; ``request`` is injected when not declared.
    """
    if isinstance(handler, BaseRouteHandler):
        raise TypeError(
            "@require_webhook must be placed below the Litestar route decorator "
            "(@post(...) first, then @require_webhook)"
        )
    takes_request = "request" in inspect.signature(handler).parameters
    added = inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    wrapper = signature_webhook_wrapper(
        handler, guard, added, injected=not takes_request, call=_in_worker_thread
    )
    target: Any = wrapper
    annotations = {k: v for k, v in getattr(handler, "__annotations__", {}).items() if k != WEBHOOK_PARAMETER}
    annotations["request"] = annotations.get("request", Request)
    target.__annotations__ = annotations
    return wrapper


async def _in_worker_thread(
    handler: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """An async handler awaited; a sync one in a worker thread (as ``sync_to_thread=True``)."""
    if is_async_callable(handler):
        return await handler(*args, **kwargs)
    return await asyncio.to_thread(handler, *args, **kwargs)


#: ``@require_webhook`` / ``@require_webhook(events=[...], secret=..., dedupe=...)`` for Litestar
#: handlers, below ``@post(...)``. The event is ``request.state.clerk_webhook``, and the
#: handler's ``webhook`` parameter if it declares one.
require_webhook: RequireWebhook = build_require_webhook(LitestarAdapter(), wrap=_wrap_webhook)


# -- the native guard ---------------------------------------------------------------------------------
def requires_auth(
    *, exclude_opt_key: str = "exclude_from_auth", **options: Unpack[GuardKwargs]
) -> _GuardFunction:
    """A Litestar guard (``guards=[requires_auth(...)]``) for any layer.

    Takes the same options as ``require_auth``. A handler whose ``opt`` has
    ``exclude_opt_key`` set (``@get(..., exclude_from_auth=True)``) is skipped,
    as with Litestar's authentication middleware. Failures raise
    [`ClerkAuthException`][clerkguard.litestar.ClerkAuthException] subclasses (401/403/503);
    [`ClerkPlugin`][clerkguard.litestar.ClerkPlugin] renders them as clerkguard's JSON body.

    ``OPTIONS``: Litestar's own generated ``OPTIONS`` handler passes (it runs
    no app code); a handler that declares ``OPTIONS`` itself is authenticated
    like any other method, because a guard cannot answer in its place.
    """
    guard = require_auth.guard(**options)
    strict = Guard(guard.adapter, dataclasses.replace(guard.options, allow_options=False))

    async def clerk_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if handler.opt.get(exclude_opt_key):
            return
        try:
            try:
                session = await guard.acheck(connection)
            except Preflight:
                if _is_generated_options(handler):
                    return
                session = await strict.acheck(connection)
        except AuthError as error:
            if connection.scope["type"] == ScopeType.WEBSOCKET:
                cast("dict[str, Any]", connection.scope)[_REFUSAL] = error  # for _websocket_refusals
            raise to_exception(error) from None
        await _store_async(connection, session)

    guard_fn = cast("_GuardFunction", clerk_guard)
    guard_fn.__clerkguard__ = guard
    guard_fn.exclude_opt_key = exclude_opt_key
    return guard_fn


# -- the plugin -----------------------------------------------------------------------------------------
#: Scope key where the guard leaves its refusal of a websocket handshake.
_REFUSAL = "clerkguard.refusal"
#: Close code of a refused handshake the server can't answer over HTTP (RFC 6455: policy violation).
_POLICY_VIOLATION = 1008


def _websocket_refusals(app: ASGIApp) -> ASGIApp:
    """Plugin middleware: a guard's refusal of a websocket handshake answers like HTTP.

    Litestar closes a websocket whose guard raised (``websocket.close``,
    code 4500 whatever the error) and the server answers a close before
    ``accept()`` with a bare 403. When the server speaks the ASGI websocket
    denial-response extension (uvicorn, hypercorn), the close becomes the
    guard's own answer instead: 401/403/503 with its headers and JSON body,
    as in Quart and Sanic. Otherwise the close says what happened, as
    clerkguard's other adapters do: code 1008 (policy violation) and the
    ``reason`` code as its reason.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.WEBSOCKET:
            await app(scope, receive, send)
            return
        denial = "websocket.http.response" in (scope.get("extensions") or {})

        async def send_refusal(message: Message) -> None:
            error = cast("dict[str, Any]", scope).get(_REFUSAL)
            if message["type"] != "websocket.close" or not isinstance(error, AuthError):
                await send(message)
            elif not denial:
                await send({**message, "code": _POLICY_VIOLATION, "reason": error.reason})
            else:
                body = encode_json(error.to_dict())
                headers = [
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers().items()
                ]
                headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
                await send(
                    {"type": "websocket.http.response.start", "status": error.status, "headers": headers}
                )
                await send({"type": "websocket.http.response.body", "body": body, "more_body": False})

        await app(scope, receive, send_refusal)

    return middleware


async def _provide_session(request: Request[Any, Any, Any]) -> Session | None:
    """The ``clerk_session`` dependency: the guard's session, or verify now."""
    if "auth" in request.scope and isinstance(request.scope["auth"], Session):
        return request.scope["auth"]
    # No guard ran (or it let an OPTIONS through): a parameter typed Session is
    # itself the requirement, so verify with the default options.
    try:
        session = await _dependency_guard.acheck(request)
    except AuthError as error:
        raise to_exception(error) from None
    await _store_async(request, session)
    return session


#: ``allow_options=False``: a handler asking for the session needs one, ``OPTIONS`` or not.
_dependency_guard: Guard[Any] = require_auth.guard(allow_options=False)


def provide_credential(**options: Unpack[GuardKwargs]) -> Provide:
    """A dependency provider yielding the verified [`Credential`][clerkguard.Credential], for
    routes that accept machine tokens.

    ::

        @get("/internal/jobs", dependencies={"caller": provide_credential(accepts_token="m2m_token")})
        async def jobs(caller: NamedDependency[MachineCredential]) -> dict[str, str]:
            return {"machine": caller.subject}

    Register it at any layer under a name of your choice; a handler parameter
    of that name is then only satisfied by a verified credential of an
    accepted kind (annotate it ``Credential``, or ``MachineCredential`` when
    only machine kinds are accepted). Litestar validates dependencies against
    their annotation and its validator refuses a union of two classes, so a
    ``Credential`` parameter is spelled ``NamedDependency[SkipValidation[Credential]]``
    (``litestar.params.SkipValidation``; type checkers still see a
    ``Credential``). Takes every option of ``require_auth``:
    ``accepts_token`` with the same values and meaning (default session
    tokens only; machine credentials come from the ``Authorization: Bearer``
    header only), the rules and ``authorize``; ``optional=True`` yields
    ``None`` without a token. It always verifies with these options (a
    repeated token comes from the verified-token cache) and, like the
    ``clerk_session`` dependency, needs a credential on ``OPTIONS`` too.
    Failures raise [`ClerkAuthException`][clerkguard.litestar.ClerkAuthException] subclasses, rendered by
    [`ClerkPlugin`][clerkguard.litestar.ClerkPlugin] as every guard answers (401
    ``token-type-not-accepted`` for a kind not accepted, 503 when the
    Backend API is down); ``request.auth`` is then the credential too.
    """
    options.setdefault("allow_options", False)
    guard: Guard[Any] = require_auth.guard(**options)

    async def provide_clerk_credential(request: Request[Any, Any, Any]) -> Credential | None:
        try:
            credential = await guard.acheck(request)
        except AuthError as error:
            raise to_exception(error) from None
        except Preflight:  # allow_options=True was asked for: OPTIONS passes without a credential
            return None
        await _store_async(request, credential)
        return credential

    provide_clerk_credential.__clerkguard__ = guard  # type: ignore[attr-defined]  # for OpenAPI
    return Provide(provide_clerk_credential)


def _credential_guard(handler: BaseRouteHandler) -> Guard[Any] | None:
    """The Guard of a [`provide_credential`][clerkguard.litestar.provide_credential] dependency the
    handler takes, if any."""
    parameters = handler.parsed_fn_signature.parameters
    for name, provider in handler.resolve_dependencies().items():
        guard = getattr(getattr(provider, "dependency", None), "__clerkguard__", None)
        if name in parameters and isinstance(guard, Guard):
            return guard
    return None


def _is_generated_options(handler: BaseRouteHandler) -> bool:
    """Litestar's own ``OPTIONS`` handler (``HTTPRoute.create_options_handler``), not app code."""
    fn = unwrap_partial(handler.fn)
    return (
        isinstance(handler, HTTPRouteHandler)
        and handler.http_methods == {"OPTIONS"}
        and getattr(fn, "__name__", "") == "options_handler"
        and getattr(fn, "__module__", "") == "litestar.routes.http"
    )


class ClerkPlugin(InitPlugin, ReceiveRoutePlugin):
    """Clerk authentication for a Litestar app: ``Litestar(plugins=[ClerkPlugin()])``.

    Args:
        auth: The [`ClerkAuth`][clerkguard.auth.ClerkAuth] (default: ``ClerkAuth()`` from ``CLERK_*``
            environment variables, built when the app is created).
        user_loader: ``user_loader(session, connection)`` (sync or async)
            whose result becomes ``request.user``; default: the session itself.
        dependency_key: Name of the injected session dependency.
        security_scheme: Name of the OpenAPI bearer scheme; ``None`` adds none.
        manage_lifecycle: Start the key refresher on startup and close the
            ``ClerkAuth`` on shutdown.
    """

    def __init__(
        self,
        auth: ClerkAuth | None = None,
        *,
        user_loader: UserLoader | None = None,
        dependency_key: str = "clerk_session",
        security_scheme: str | None = SECURITY_SCHEME,
        manage_lifecycle: bool = True,
    ) -> None:
        if user_loader is not None and not callable(user_loader):
            raise ConfigurationError("user_loader must be callable as user_loader(session, connection)")
        self.auth = auth
        """The ClerkAuth every guard of the app uses unless given its own."""
        self.user_loader = user_loader
        """Turns a session into ``request.user``; ``None`` keeps the session."""
        self.dependency_key = dependency_key
        """Parameter name that receives the verified [`Session`][clerkguard.session.Session]."""
        self.security_scheme = security_scheme
        """OpenAPI security scheme name, or ``None``."""
        self.manage_lifecycle = manage_lifecycle
        """Whether startup/shutdown hooks run the key refresher."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Register lifecycle hooks, the dependency, exception handlers and OpenAPI."""
        if self.auth is None:
            self.auth = ClerkAuth()
        if self.manage_lifecycle:
            app_config.on_startup.append(self._startup)
            app_config.on_shutdown.append(self._shutdown)
        app_config.dependencies.setdefault(self.dependency_key, Provide(_provide_session))
        app_config.middleware.append(_websocket_refusals)
        # Registered by class, so the app's own 401/403/503 handlers (looked up by
        # status code first) still win: rendering stays overridable.
        app_config.exception_handlers.setdefault(ClerkAuthException, auth_exception_handler)
        if self.security_scheme is not None and app_config.openapi_config is not None:
            config = app_config.openapi_config
            components = config.components if isinstance(config.components, list) else [config.components]
            ours = Components(
                security_schemes={
                    self.security_scheme: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT",
                        description="A Clerk session token (Authorization: Bearer, or the __session cookie).",
                    )
                }
            )
            # A shallow copy: the same OpenAPIConfig may serve several apps, and
            # dataclasses.replace would rerun its __post_init__ (deprecation warnings).
            config = copy.copy(config)
            config.components = [*components, ours]
            app_config.openapi_config = config
        return app_config

    def receive_route(self, route: BaseRoute) -> None:
        """Mark every guarded operation with the bearer security requirement."""
        if self.security_scheme is None:
            return
        for handler in getattr(route, "route_handlers", ()):
            guard = _guard_of(handler)
            takes_session = self.dependency_key in handler.parsed_fn_signature.parameters
            if guard is None and not takes_session:
                guard = _credential_guard(handler)  # a provide_credential dependency
                if guard is None:
                    continue
            requirement: list[dict[str, list[str]]] = [{self.security_scheme: []}]
            if guard is not None and guard.options.optional and not takes_session:
                requirement.insert(0, {})  # OpenAPI: an empty requirement means "anonymous is fine"
            existing = list(handler.security or [])
            handler.security = [*existing, *(r for r in requirement if r not in existing)]

    async def _startup(self) -> None:
        assert self.auth is not None
        await _warm_up(self.auth)

    async def _shutdown(self) -> None:
        assert self.auth is not None
        await self.auth.aclose()


async def _warm_up(auth: ClerkAuth) -> None:
    """Fetch keys before the first request, then keep them fresh in the background.

    The fetch is bounded by ``http_timeout``; a failure is logged by the
    keyring and the first requests fetch lazily (503 until keys arrive).
    A fetch completed here also can't be cut off by a shutdown mid-flight.
    """
    if auth.jwks_uri is not None:
        await auth.keyring.refresh_async()
    auth.keyring.start_async_refresher()


def _guard_of(handler: BaseRouteHandler) -> Guard[Any] | None:
    """The clerkguard Guard protecting ``handler`` (decorator or native guard), if any."""
    if isinstance(handler, HTTPRouteHandler) and handler.http_methods == {"OPTIONS"}:
        return None
    fn = unwrap_partial(handler.fn)
    guard = getattr(fn, "__clerkguard__", None)
    if isinstance(guard, Guard):
        return guard
    for layer_guard in handler.resolve_guards():
        guard = getattr(layer_guard, "__clerkguard__", None)
        excluded = handler.opt.get(getattr(layer_guard, "exclude_opt_key", ""))
        if isinstance(guard, Guard) and not excluded:
            return guard
    return None
