"""Quart integration: ``ClerkGuard`` extension, ``@require_auth``, ``current_auth``.



    from quart import Quart
    from clerkguard.quart import ClerkGuard, current_auth, require_auth

    app = Quart(__name__)
    ClerkGuard(app)  # CLERK_* from app.config, then the environment

    @app.get("/me")
    @require_auth  # below the route decorator
    async def me():
        return {"user_id": current_auth.user_id}

Glue only: every decision is [`clerkguard.adapters.Guard`][clerkguard.adapters.Guard]'s. Wrappers
are always async (the async key fetcher, never blocking the loop); sync views
run through ``current_app.ensure_async`` as Quart runs them. Websocket routes
are guarded before ``accept()``: a rejected handshake gets the same status and
JSON body as HTTP (ASGI ``websocket.http.response``; servers without that
extension close the handshake instead). ``before_serving``/``after_serving``
start and stop the background key refresher; without them (test clients)
keys are fetched lazily, which is fully correct.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from typing_extensions import Unpack

from .errors import MissingDependencyError

try:
    import quart
    from quart import current_app, g, has_websocket_context
    from werkzeug import exceptions as http
    from werkzeug.local import LocalProxy
except ImportError:  # pragma: no cover - exercised in a venv without Quart
    raise MissingDependencyError("quart", "quart") from None

from . import _pallets
from ._webhook_guard import RequireWebhook, build_require_webhook
from .adapters import (
    Adapter,
    Guard,
    GuardKwargs,
    Preflight,
    RequireAuth,
    _misordered_message,
    _misordered_views,
    auth_from_config,
    build_require_auth,
    unguarded_views,
)
from .auth import ClerkAuth
from .errors import AuthError, ConfigurationError, WebhookError
from .machine import Credential
from .session import Session

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from werkzeug.wrappers.request import Request as WSGIRequest

    from .webhooks import WebhookEvent

__all__ = [
    "AuthHTTPException",
    "ClerkGuard",
    "QuartAdapter",
    "current_auth",
    "current_credential",
    "current_webhook",
    "get_auth",
    "get_credential",
    "get_webhook",
    "guard_blueprint",
    "require_auth",
    "require_webhook",
]

logger = logging.getLogger("clerkguard.quart")

#: ``app.extensions`` key of the extension's per-app state.
EXTENSION = _pallets.EXTENSION
#: Attribute of ``g`` holding the request's session (prefixed: ``g`` is shared).
G_ATTRIBUTE = _pallets.G_ATTRIBUTE

#: What a guarded Quart handler sees: an HTTP request or a websocket.
Connection: TypeAlias = quart.Request | quart.Websocket


class AuthHTTPException(_pallets.AuthHTTPExceptionBase):
    """A werkzeug ``HTTPException`` carrying an [`AuthError`][clerkguard.AuthError].

    Renders itself as the guard's JSON body with its headers; raised as
    [`AuthUnauthorized`][clerkguard.quart.AuthUnauthorized], [`AuthForbidden`][clerkguard.quart.AuthForbidden]
    or [`AuthUnavailable`][clerkguard.quart.AuthUnavailable] so an app's
    ``errorhandler(401)``/``(403)``/``(503)`` takes precedence over the extension's default handler.

    Attributes:
        error: The [`AuthError`][clerkguard.AuthError].
    """

    response_class = quart.Response

    # Quart renders a raised HTTPException with get_response() and accepts its
    # own Response type there, which is not werkzeug's (hence the ignore).
    def get_response(  # type: ignore[override]
        self,
        environ: WSGIEnvironment | WSGIRequest | None = None,
        scope: dict[str, Any] | None = None,
    ) -> quart.Response:
        """The JSON error response: ``{"error": ..., "reason": ..., "detail": ...}`` plus headers."""
        response: quart.Response = self.render()
        return response


class AuthUnauthorized(AuthHTTPException, http.Unauthorized):
    """401 from a guard (found by ``errorhandler(401)``)."""


class AuthForbidden(AuthHTTPException, http.Forbidden):
    """403 from a guard (found by ``errorhandler(403)``)."""


class AuthUnavailable(AuthHTTPException, http.ServiceUnavailable):
    """503 from a guard: no signing keys (found by ``errorhandler(503)``)."""


class AuthBadRequest(AuthHTTPException, http.BadRequest):
    """400 from ``require_webhook``: a refused delivery (found by ``errorhandler(400)``)."""


AuthHTTPException.by_status = {
    400: AuthBadRequest,
    401: AuthUnauthorized,
    403: AuthForbidden,
    503: AuthUnavailable,
}


def _render(error: AuthHTTPException) -> quart.Response:
    return error.get_response()


def _connection() -> Connection:
    if has_websocket_context():
        return cast(quart.Websocket, quart.websocket._get_current_object())  # type: ignore[attr-defined]
    return cast(quart.Request, quart.request._get_current_object())  # type: ignore[attr-defined]


class QuartAdapter(Adapter[Connection]):
    """The [`Adapter`][clerkguard.adapters.Adapter] hooks for Quart (requests and websockets)."""

    async_only = True

    def header(self, request: Connection, name: str) -> str | None:
        """A request header."""
        return request.headers.get(name)

    def header_values(self, request: Connection, name: str) -> Sequence[str]:
        """Every line of a header, as the ASGI server received them."""
        return request.headers.getlist(name)

    def is_websocket(self, request: Connection) -> bool:
        """Whether this is a websocket handshake."""
        return isinstance(request, quart.Websocket)

    def method(self, request: Connection) -> str:
        """The request method (``GET`` for a websocket handshake)."""
        return request.method

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Connection:
        """The real request (or websocket) object (what ``authorize`` gets)."""
        return _connection()

    def store(self, request: Connection, session: Session | None) -> None:
        """Put the session on ``g`` (read it through `current_auth`)."""
        # On the object behind the proxy: each attribute access through a
        # LocalProxy costs about a microsecond.
        setattr(g._get_current_object(), G_ATTRIBUTE, session)

    def reject(self, request: Connection, error: AuthError) -> Any:
        """Raise the [`AuthHTTPException`][clerkguard.quart.AuthHTTPException] for ``error`` (before any
        websocket accept)."""
        raise AuthHTTPException.for_error(error) from None

    async def options_response(self, request: Connection) -> quart.Response:
        """Quart's default ``OPTIONS`` answer (``Allow``), as a ``204``."""
        return _pallets.no_content(await current_app.make_default_options_response())

    def auth_for(self, request: Connection) -> ClerkAuth:
        """The app's [`ClerkAuth`][clerkguard.auth.ClerkAuth] (from the extension, else built from
        config/env)."""
        return _pallets.app_state(current_app._get_current_object()).auth  # type: ignore[attr-defined]

    async def call_async(
        self, handler: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Call the view the way Quart does (sync views in a worker thread)."""
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        return await app.ensure_async(handler)(*args, **kwargs)

    # -- webhooks ------------------------------------------------------------------------------
    async def abody(self, request: Connection, limit: int) -> bytes:
        """The raw body (Quart's own ``MAX_CONTENT_LENGTH`` also applies while reading)."""
        if not isinstance(request, quart.Request):
            raise WebhookError("body-missing", "a websocket carries no webhook body")
        try:
            data: bytes = await request.get_data(cache=True, as_text=False, parse_form_data=False)
        except http.RequestEntityTooLarge:
            raise WebhookError("body-too-large", "the body is over the size limit") from None
        return data

    def json_response(self, request: Connection, status: int, content: Any) -> quart.Response:
        """A JSON response."""
        return current_app.response_class(json.dumps(content), status=status, mimetype="application/json")

    def webhook_secret(self, request: Any) -> str | None:
        """``app.config["CLERK_WEBHOOK_SIGNING_SECRET"]`` (a string, or a list during a rotation)."""
        return _pallets.config_secret(current_app.config)

    def store_webhook(self, request: Connection, event: WebhookEvent) -> None:
        """Put the event on ``g`` (read it through `current_webhook`)."""
        setattr(g, G_WEBHOOK, event)


#: ``@require_auth`` / ``@require_auth(authorize=..., optional=..., role=..., auth=...)``.
require_auth: RequireAuth = build_require_auth(QuartAdapter())


#: ``@require_webhook`` / ``@require_webhook(events=[...], secret=..., dedupe=...)``: a Clerk
#: webhook endpoint (see `clerkguard.webhooks`); the event is `current_webhook`.
require_webhook: RequireWebhook = build_require_webhook(QuartAdapter())
#: Attribute of ``g`` holding the request's verified webhook event.
G_WEBHOOK = "_clerkguard_webhook"


def get_webhook() -> WebhookEvent | None:
    """The event ``require_webhook`` verified for this request, or ``None``."""
    event: WebhookEvent | None = g.get(G_WEBHOOK)
    return event


#: The request's verified `WebhookEvent` (a ``LocalProxy``).
current_webhook: WebhookEvent = cast("WebhookEvent", LocalProxy(get_webhook))


def get_auth() -> Session | None:
    """The session a guard verified for this request; ``None`` when there is none."""
    session: Session | None = g._get_current_object().get(G_ATTRIBUTE)
    return session


#: The request's verified [`Session`][clerkguard.Session] (a werkzeug ``LocalProxy``).
#: Falsy when the route let the request through without a session
#: (``optional=True``, ``OPTIONS``); use ``if current_auth:`` or [`get_auth`][clerkguard.quart.get_auth].
current_auth: Session = cast(Session, LocalProxy(get_auth))


def get_credential() -> Credential | None:
    """The credential a guard verified for this request, of any kind; ``None`` when there is none.

    The same object as [`get_auth`][clerkguard.quart.get_auth], typed for routes
    with ``accepts_token=``: a [`Session`][clerkguard.Session] or a
    [`MachineCredential`][clerkguard.MachineCredential] (tell them apart by ``token_type``).
    """
    credential: Credential | None = g._get_current_object().get(G_ATTRIBUTE)
    return credential


#: The request's verified credential of any kind (a werkzeug ``LocalProxy``): the
#: object `current_auth` proxies, typed [`Credential`][clerkguard.Credential] for
#: routes that accept machine tokens (``accepts_token=``).
current_credential: Credential = cast("Credential", LocalProxy(get_credential))


def guard_blueprint(
    blueprint: quart.Blueprint | quart.Quart, **options: Unpack[GuardKwargs]
) -> Guard[Connection]:
    """Guard every HTTP and websocket route of ``blueprint`` (or an app) in one line.

    Takes the options of ``require_auth(...)``; returns the installed
    [`Guard`][clerkguard.adapters.Guard].
    """
    guard: Guard[Connection] = require_auth.guard(**options)

    async def clerkguard_before() -> quart.Response | None:
        connection = _connection()
        try:
            session = await guard.acheck(connection)
        except AuthError as error:
            raise AuthHTTPException.for_error(error) from None
        except Preflight:
            if _pallets.automatic_options(connection):
                return None  # Quart answers it itself, without the view
            # The view declares OPTIONS: answer for it (a before_request response skips the view).
            return _pallets.no_content(await current_app.make_default_options_response())
        setattr(g._get_current_object(), G_ATTRIBUTE, session)
        return None

    blueprint.before_request(clerkguard_before)
    blueprint.before_websocket(clerkguard_before)
    return guard


class ClerkGuard:
    """The Quart extension: one [`ClerkAuth`][clerkguard.auth.ClerkAuth] per app, lifecycle, error rendering.

    ``ClerkGuard(app)`` or ``guard = ClerkGuard(); guard.init_app(app)``.
    State lives in ``app.extensions["clerkguard"]``; no reference to the app
    is kept.

    Args:
        app: The app to initialise now.
        auth: The [`ClerkAuth`][clerkguard.auth.ClerkAuth] for every app this extension initialises;
            when omitted, each app gets one from its ``CLERK_*`` config keys,
            falling back to the environment.
        check_decorator_order: Refuse routes whose view ``require_auth``
            wrapped only *after* the route decorator registered it (see
            [`clerkguard.adapters.unguarded_views`][clerkguard.adapters.unguarded_views]).
    """

    #: The module's decorator, for ``guard.require_auth`` style.
    require_auth: RequireAuth = require_auth

    def __init__(
        self,
        app: quart.Quart | None = None,
        auth: ClerkAuth | None = None,
        *,
        check_decorator_order: bool = True,
    ) -> None:
        self.auth = auth
        self.check_decorator_order = check_decorator_order
        if app is not None:
            self.init_app(app)

    def init_app(self, app: quart.Quart, auth: ClerkAuth | None = None) -> None:
        """Configure ``app``: its ClerkAuth, lifecycle hooks, error handler, order check."""
        resolved = auth or self.auth or auth_from_config(app.config)
        state = _pallets.AppState(resolved)
        app.extensions[EXTENSION] = state
        app.register_error_handler(AuthHTTPException, _render)

        async def clerkguard_start_refresher() -> None:
            resolved.keyring.start_async_refresher()

        async def clerkguard_stop_refresher() -> None:
            await resolved.aclose()

        app.before_serving(clerkguard_start_refresher)
        app.after_serving(clerkguard_stop_refresher)
        if not self.check_decorator_order:
            return
        _refuse_misordered(app.view_functions, unguarded_views(app.view_functions))

        async def clerkguard_check_decorator_order() -> None:
            misordered = state.misordered
            if misordered is None:
                with state.lock:
                    if state.misordered is None:
                        found = unguarded_views(current_app.view_functions)
                        if found:
                            what, _ = _misordered_message(
                                _misordered_views(current_app.view_functions, found)
                            )
                            logger.error("%s; those views are NOT guarded and will answer 500", what)
                        state.misordered = frozenset(found)
                misordered = state.misordered
            if misordered:
                endpoint = _connection().endpoint
                if endpoint in misordered:
                    _refuse_misordered(current_app.view_functions, [endpoint])
            else:
                # The scan above is final (routes added later are never
                # rescanned), so with nothing misordered this hook has nothing
                # left to do: drop it rather than pay for it on every request.
                # New lists, so requests iterating the old ones are undisturbed.
                app = current_app._get_current_object()  # type: ignore[attr-defined]
                for hooks in (app.before_request_funcs, app.before_websocket_funcs):
                    hooks[None] = [
                        f for f in hooks.get(None, []) if f is not clerkguard_check_decorator_order
                    ]

        app.before_request(clerkguard_check_decorator_order)
        app.before_websocket(clerkguard_check_decorator_order)

    def auth_for(self, app: quart.Quart) -> ClerkAuth:
        """The [`ClerkAuth`][clerkguard.auth.ClerkAuth] ``app`` uses."""
        return _pallets.app_state(app).auth


def _refuse_misordered(views: Mapping[str, Any], endpoints: Iterable[str | None]) -> None:
    found = _misordered_views(views, endpoints)
    if found:
        what, fix = _misordered_message(found)
        raise ConfigurationError(
            f"{what}: the route registered the unguarded function. Put {fix} below @app.route."
        )
