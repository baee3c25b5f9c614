"""FastAPI integration: [`ClerkGuard`][clerkguard.fastapi.ClerkGuard], the ``requires_auth`` dependency,
``@require_auth``.

::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from clerkguard import Session
    from clerkguard.fastapi import ClerkGuard, requires_auth

    app = FastAPI()
    ClerkGuard(app)  # ClerkAuth() from CLERK_*, JSON errors, key refresher in the lifespan

    @app.get("/me")
    async def me(session: Annotated[Session, Depends(requires_auth())]):
        return {"user_id": session.user_id}

Two forms, one decision ([`clerkguard.adapters.Guard`][clerkguard.adapters.Guard]):

* the dependency: ``requires_auth(...)`` returns a ``fastapi.security``
  ``SecurityBase`` that yields the verified [`Session`][clerkguard.Session], in a
  parameter or in ``dependencies=[Depends(requires_auth())]`` on a route,
  router or app. FastAPI documents it as the HTTP bearer security scheme
  ``ClerkBearer`` on exactly the operations that use it (Swagger UI's
  "Authorize" button works). It verifies on the event loop with the async key
  fetcher, for sync and async endpoints alike.
* the decorator, **below** ``@app.get(...)``: ``@require_auth(role="admin")``.
  It keeps the endpoint's signature for FastAPI's dependency injection and
  adds a connection parameter when the endpoint has none. A sync endpoint
  stays sync: FastAPI runs it in its threadpool, where a cold key fetch
  blocks that worker thread, never the event loop. Websocket endpoints are
  refused before ``accept()``. Placed above the route decorator it would
  guard nothing: [`ClerkGuard`][clerkguard.fastapi.ClerkGuard] refuses such an app when it starts.

[`ClerkGuard`][clerkguard.fastapi.ClerkGuard] renders failures as ``{"error": ..., "reason": ...}``
with ``WWW-Authenticate``/``Retry-After`` (not FastAPI's ``{"detail": ...}``);
an app's own 401/403/503 exception handlers still win.
"""

from __future__ import annotations

from .errors import MissingDependencyError

try:
    import fastapi
except ImportError:  # pragma: no cover - exercised in a venv without FastAPI
    raise MissingDependencyError("fastapi", "fastapi") from None

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, cast

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.utils import get_typed_signature
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Scope
from starlette.websockets import WebSocket
from typing_extensions import Unpack

from ._webhook_guard import WEBHOOK_PARAMETER as WEBHOOK_PARAMETER  # the name FastAPI never sees
from ._webhook_guard import RequireWebhook, WebhookGuard, build_require_webhook, signature_webhook_wrapper
from .adapters import (
    Guard,
    GuardKwargs,
    Preflight,
    RequireAuth,
    build_require_auth,
    guard_of,
    is_async_callable,
)
from .auth import ClerkAuth
from .errors import AuthError
from .machine import Credential
from .starlette import (
    ClerkAuthException,
    StarletteAdapter,
    StarletteWebhookAdapter,
    _remember,
    allowed_methods,
    auth_exception_handler,
    deny_websocket,
    error_response,
    ordered_methods,
)
from .starlette import ClerkGuard as _StarletteClerkGuard

__all__ = [
    "CONNECTION_PARAMETER",
    "SECURITY_SCHEME",
    "ClerkAuthException",
    "ClerkBearer",
    "ClerkGuard",
    "FastAPIAdapter",
    "auth_exception_handler",
    "error_response",
    "require_auth",
    "require_webhook",
    "requires_auth",
]

#: Name of the OpenAPI security scheme (``components.securitySchemes``).
SECURITY_SCHEME = "ClerkBearer"
_SCHEME_DESCRIPTION = "A Clerk session token (Authorization: Bearer, or the __session cookie)."
_SCHEME = HTTPBearerModel(bearerFormat="JWT", description=_SCHEME_DESCRIPTION)


class FastAPIAdapter(StarletteAdapter):
    """The Starlette hooks; FastAPI passes the connection by keyword (see `_wrap`)."""

    def options_response(self, request: HTTPConnection) -> Response:
        """``204`` with ``Allow``: every method served at the path, in included routers too."""
        return Response(status_code=204, headers={"Allow": ", ".join(_allowed_methods(request.scope))})


def _allowed_methods(scope: Scope) -> list[str]:
    methods = set(allowed_methods(scope))
    path = getattr(scope.get("route"), "path_format", None)
    app = scope.get("app")
    if path is not None and isinstance(app, FastAPI):
        for route in _api_routes(app):
            if route.path_format == path:
                methods.update(route.methods or ())
    return ordered_methods(methods)


class _OptionsAnswer(HTTPException):
    """``OPTIONS`` on a route guarded by the dependency: the endpoint must not run.

    A 204 ``HTTPException`` carrying ``Allow``: FastAPI's default handler
    answers it with an empty 204 and the header.
    """


# -- the decorator ----------------------------------------------------------------------------


#: Name of the parameter the decorator adds when the endpoint has no ``HTTPConnection``
#: parameter (FastAPI fills it, the wrapper removes it before calling the endpoint).
CONNECTION_PARAMETER = "clerkguard_connection"


def _typed_parameters(handler: Callable[..., Any]) -> list[inspect.Parameter]:
    """The endpoint's parameters with annotations resolved as FastAPI resolves them."""
    try:
        return list(get_typed_signature(handler).parameters.values())
    except Exception:  # an unresolvable annotation: FastAPI will report it itself
        return list(inspect.signature(handler).parameters.values())


def _own_connection(typed: list[inspect.Parameter], wanted: type[HTTPConnection]) -> str | None:
    """The endpoint's own parameter FastAPI fills with the connection, if any.

    FastAPI fills a parameter annotated with ``HTTPConnection``, ``Request`` or
    ``WebSocket`` (or a subclass); reusing it spares the endpoint one more
    parameter to fill per request.
    """
    return next(
        (p.name for p in typed if inspect.isclass(p.annotation) and issubclass(p.annotation, wanted)), None
    )


def _wrap(handler: Callable[..., Any], guard: Guard[Any]) -> Callable[..., Any]:
    """Wrap a FastAPI endpoint, keeping its kind and (for DI) its signature.

    The guard needs the connection: FastAPI fills a parameter annotated
    ``HTTPConnection`` for HTTP and websocket routes alike, outside the
    OpenAPI parameters, at almost no cost (a dependency would cost ~9 µs per
    request). The endpoint's own such parameter (annotated ``HTTPConnection``,
    ``Request`` or ``WebSocket``) is used, else one is added.
    """
    if inspect.isclass(handler) or isinstance(handler, SecurityBase):
        raise TypeError("@require_auth decorates endpoint functions; for dependencies use requires_auth()")
    adapter = cast(FastAPIAdapter, guard.adapter)
    signature = inspect.signature(handler)
    typed = _typed_parameters(handler)
    websocket = any(inspect.isclass(p.annotation) and issubclass(p.annotation, WebSocket) for p in typed)
    own = _own_connection(typed, WebSocket if websocket else HTTPConnection)
    injected = own is None
    key = own or CONNECTION_PARAMETER
    if injected:
        if key in signature.parameters:
            raise TypeError(f"@require_auth is applied twice, or the endpoint has a {key} parameter")
        parameters = list(signature.parameters.values())
        at = len(parameters)
        if parameters and parameters[-1].kind is inspect.Parameter.VAR_KEYWORD:
            at -= 1
        added = inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=HTTPConnection)
        parameters.insert(at, added)
        signature = signature.replace(parameters=parameters)

    if websocket and not is_async_callable(handler):
        raise TypeError("websocket endpoints are async; @require_auth can't wrap a sync one")
    wrapper: Callable[..., Any]
    if is_async_callable(handler):

        @functools.wraps(handler)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            request = kwargs.pop(key) if injected else kwargs[key]
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

        wrapper = async_wrapper
    else:

        @functools.wraps(handler)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            # FastAPI runs sync endpoints in its threadpool: a cold key fetch
            # here blocks a worker thread, never the event loop.
            request = kwargs.pop(key) if injected else kwargs[key]
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

        wrapper = sync_wrapper

    # FastAPI reads inspect.signature (which stops at __signature__) and
    # resolves string annotations in the unwrapped handler's globals.
    target: Any = wrapper
    target.__signature__ = signature
    target.__clerkguard__ = guard
    _remember(handler)
    return wrapper


#: ``@require_auth`` / ``@require_auth(authorize=..., role=..., optional=..., auth=...)`` for
#: FastAPI endpoints; place it below ``@app.get(...)``.
require_auth: RequireAuth = build_require_auth(FastAPIAdapter(), wrap=_wrap)


# -- webhooks -------------------------------------------------------------------------------------
def _wrap_webhook(handler: Callable[..., Any], guard: WebhookGuard[Any]) -> Callable[..., Any]:
    """Wrap a FastAPI endpoint for ``require_webhook``: always a coroutine function.

    As for ``require_auth``, FastAPI fills an ``HTTPConnection`` parameter (the
    endpoint's own, else one added); a ``webhook`` parameter is filled with
    the event and hidden from FastAPI. A sync endpoint runs in the threadpool.
    """
    if inspect.isclass(handler) or isinstance(handler, SecurityBase):
        raise TypeError("@require_webhook decorates endpoint functions")
    own = _own_connection(_typed_parameters(handler), HTTPConnection)
    key = own or CONNECTION_PARAMETER
    connection = inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=HTTPConnection)
    # The adapter's call_async (StarletteWebhookAdapter): a sync endpoint runs in the threadpool.
    wrapper = signature_webhook_wrapper(handler, guard, connection, injected=own is None)
    _remember(handler, "require_webhook")  # ClerkGuard refuses it above @app.post (a bare, unverified route)
    return wrapper


#: ``@require_webhook`` / ``@require_webhook(events=[...], secret=..., dedupe=...)`` for FastAPI
#: endpoints, below ``@app.post(...)``. The event is the endpoint's ``webhook`` parameter
#: (if it has one) and ``request.state.clerk_webhook``.
require_webhook: RequireWebhook = build_require_webhook(StarletteWebhookAdapter(), wrap=_wrap_webhook)


# -- the dependency ------------------------------------------------------------------------------
class ClerkBearer(SecurityBase):
    """The dependency [`requires_auth`][clerkguard.fastapi.requires_auth] returns: the session, and the
    OpenAPI scheme.

    A ``fastapi.security.base.SecurityBase`` like FastAPI's own ``HTTPBearer``:
    FastAPI calls it with the connection and lists `model` under
    ``components.securitySchemes[scheme_name]`` and in the ``security`` of
    every operation that depends on it.

    Attributes:
        guard: The [`Guard`][clerkguard.adapters.Guard] it runs.
    """

    def __init__(self, guard: Guard[Any], *, scheme_name: str = SECURITY_SCHEME) -> None:
        self.guard = guard
        self.model = _SCHEME
        self.scheme_name = scheme_name
        self.__clerkguard__ = guard

    async def __call__(self, request: HTTPConnection) -> Credential | None:
        """Verify the request; the session (``None``: optional and anonymous), or raise.

        With ``accepts_token=`` machine kinds it may be a
        [`MachineCredential`][clerkguard.MachineCredential]: annotate such a
        parameter with [`Credential`][clerkguard.Credential].

        Runs on the event loop (async key fetch) whatever the endpoint's kind.
        Failures raise [`ClerkAuthException`][clerkguard.starlette.ClerkAuthException].
        """
        guard = self.guard
        try:
            session = await guard.acheck(request)
        except AuthError as error:
            raise ClerkAuthException(error) from None
        except Preflight:
            # The endpoint must not run for OPTIONS: answer it as the framework would.
            raise _OptionsAnswer(204, headers={"Allow": ", ".join(_allowed_methods(request.scope))}) from None
        guard.adapter.store(request, session)
        return session


def requires_auth(**options: Unpack[GuardKwargs]) -> ClerkBearer:
    """A FastAPI dependency requiring a verified Clerk session; it yields the
    [`Session`][clerkguard.session.Session].

    ``session: Annotated[Session, Depends(requires_auth(role="org:admin"))]``, or
    ``dependencies=[Depends(requires_auth())]`` on a route, router or app.
    Takes every option of ``require_auth``; with ``optional=True`` it yields
    ``None`` for a request without a token. Failures raise
    [`ClerkAuthException`][clerkguard.starlette.ClerkAuthException] (401/403/503), which
    [`ClerkGuard`][clerkguard.fastapi.ClerkGuard] renders as clerkguard's JSON body. ``OPTIONS`` (with
    the default ``allow_options=True``) is answered ``204`` with ``Allow``;
    the endpoint does not run.
    """
    return ClerkBearer(require_auth.guard(**options))


class ClerkGuard(_StarletteClerkGuard):
    """Clerk authentication for a FastAPI app: ``ClerkGuard(app)`` or ``init_app(app)``.

    Keeps the app's [`ClerkAuth`][clerkguard.ClerkAuth] (default ``ClerkAuth()``
    from ``CLERK_*``) on ``app.state``, renders errors as clerkguard's JSON
    (an exception handler for [`ClerkAuthException`][clerkguard.starlette.ClerkAuthException]),
    starts and stops the key refresher with the app's lifespan without
    replacing it, and refuses to start an app where ``@require_auth`` sits
    above a route decorator.

    Args:
        app: The app to initialise now (or later with [`init_app`][clerkguard.fastapi.ClerkGuard.init_app]).
        auth: The ClerkAuth; default ``ClerkAuth()`` from the environment.
        manage_lifecycle: Run the key refresher in the app's lifespan.
    """

    #: The module's decorator, for ``guard.require_auth`` style.
    require_auth: RequireAuth = require_auth

    def init_app(self, app: Starlette, auth: ClerkAuth | None = None) -> ClerkAuth:
        """Configure ``app``; returns the [`ClerkAuth`][clerkguard.ClerkAuth] it uses.

        Besides the Starlette setup, the app's OpenAPI document lists the
        ``ClerkBearer`` scheme on the operations the decorator guards (the
        dependency form is listed by FastAPI itself).
        """
        resolved = super().init_app(app, auth)
        if isinstance(app, FastAPI):
            _document_decorated_operations(app)
        return resolved


def _document_decorated_operations(app: FastAPI) -> None:
    """Wrap ``app.openapi`` to add the bearer requirement to ``@require_auth`` operations.

    An ``optional=True`` guard also lists the empty requirement ``{}``
    (OpenAPI's "anonymous is fine"). FastAPI caches the document in
    ``app.openapi_schema``; it is amended once, when first built.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            _add_security(app, schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's API routes as FastAPI's OpenAPI generator sees them (prefixes applied)."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:  # FastAPI before lazy included routers: app.routes is flat
        yield from (route for route in app.routes if isinstance(route, APIRoute))
        return
    for context in iterate(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def _bearer_guards(dependant: Any) -> Iterator[Guard[Any]]:
    """The guards of the ``requires_auth`` dependencies in a dependency tree."""
    for dependency in getattr(dependant, "dependencies", ()):
        if isinstance(dependency.call, ClerkBearer):
            yield dependency.call.guard
        yield from _bearer_guards(dependency)


def _add_security(app: FastAPI, schema: dict[str, Any]) -> None:
    """Mark decorated operations; list ``{}`` first where every guard is optional."""
    marked = False
    for route in _api_routes(app):
        if not route.include_in_schema:
            continue
        decorated = guard_of(route.endpoint)
        guards = [*([decorated] if decorated is not None else []), *_bearer_guards(route.dependant)]
        if not guards:
            continue
        requirement: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}]
        if all(guard.options.optional for guard in guards):
            requirement.insert(0, {})  # OpenAPI: an empty requirement means "anonymous is fine"
        for method in route.methods or ():
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            existing = operation.get("security", [])
            operation["security"] = [*requirement, *(r for r in existing if r not in requirement)]
            marked = True
    if marked:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes.setdefault(SECURITY_SCHEME, _SCHEME.model_dump(by_alias=True, exclude_none=True))
