"""Flask integration: ``ClerkGuard`` extension, ``@require_auth``, ``current_auth``.



    from flask import Flask
    from clerkguard.flask import ClerkGuard, current_auth, require_auth

    app = Flask(__name__)
    ClerkGuard(app)  # CLERK_* from app.config, then the environment

    @app.get("/me")
    @require_auth  # below the route decorator
    def me():
        return {"user_id": current_auth.user_id}

Glue only: every decision is [`clerkguard.adapters.Guard`][clerkguard.adapters.Guard]'s. Flask runs
each async view on a fresh event loop, so guards here are always synchronous
(the sync key fetcher, shared across threads) and call the view through
``current_app.ensure_sync``. A rejection is raised as an
[`AuthHTTPException`][clerkguard.flask.AuthHTTPException] (a werkzeug ``HTTPException``), so the app's own
``errorhandler(401)``/``(403)``/``(503)`` can render it.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from typing_extensions import Unpack

from .errors import MissingDependencyError

try:
    import flask
    from flask import current_app, g
    from werkzeug import exceptions as http
    from werkzeug.local import LocalProxy
except ImportError:  # pragma: no cover - exercised in a venv without Flask
    raise MissingDependencyError("flask", "flask") from None

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
    "FlaskAdapter",
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

logger = logging.getLogger("clerkguard.flask")

#: ``app.extensions`` key of the extension's per-app state.
EXTENSION = _pallets.EXTENSION
#: Attribute of ``g`` holding the request's session (prefixed: ``g`` is shared).
G_ATTRIBUTE = _pallets.G_ATTRIBUTE


class AuthHTTPException(_pallets.AuthHTTPExceptionBase):
    """A werkzeug ``HTTPException`` carrying an [`AuthError`][clerkguard.AuthError].

    Renders itself (``get_response``) as the guard's JSON body with the
    ``WWW-Authenticate`` / ``Retry-After`` headers, so it is correct even in an
    app without the extension. Raised as [`AuthUnauthorized`][clerkguard.flask.AuthUnauthorized],
    [`AuthForbidden`][clerkguard.flask.AuthForbidden] or
    [`AuthUnavailable`][clerkguard.flask.AuthUnavailable], which also subclass werkzeug's
    ``Unauthorized``/``Forbidden``/``ServiceUnavailable``: Flask finds an app's ``errorhandler(401)`` for them
    before the extension's default.

    Attributes:
        error: The [`AuthError`][clerkguard.AuthError] (``.status``, ``.reason``, ...).
    """

    response_class = flask.Response

    def get_response(
        self,
        environ: WSGIEnvironment | WSGIRequest | None = None,
        scope: dict[str, Any] | None = None,
    ) -> flask.Response:
        """The JSON error response: ``{"error": ..., "reason": ..., "detail": ...}`` plus headers."""
        response: flask.Response = self.render()
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


def _render(error: AuthHTTPException) -> flask.Response:
    return error.get_response()


def _environ_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


#: WSGI environ keys of the headers the guard reads on every request.
_ENVIRON_KEYS = {
    name: _environ_key(name) for name in ("authorization", "cookie", "host", "origin", "sec-fetch-site")
}


class FlaskAdapter(Adapter[flask.Request]):
    """The [`Adapter`][clerkguard.adapters.Adapter] hooks for Flask."""

    sync_only = True

    def header(self, request: flask.Request, name: str) -> str | None:
        """A request header (read from the WSGI environ: EnvironHeaders lookups cost µs)."""
        value = request.environ.get(_ENVIRON_KEYS.get(name) or _environ_key(name))
        return value if isinstance(value, str) else None

    def header_values(self, request: flask.Request, name: str) -> Sequence[str]:
        """A header's value as the WSGI server passed it (servers fold repeated lines with commas)."""
        value = request.environ.get(_ENVIRON_KEYS.get(name) or _environ_key(name))
        return (value,) if isinstance(value, str) else ()

    def method(self, request: flask.Request) -> str:
        """The request method."""
        return request.method

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> flask.Request:
        """The real request object behind ``flask.request`` (what ``authorize`` gets)."""
        return cast(flask.Request, flask.request._get_current_object())  # type: ignore[attr-defined]

    def store(self, request: flask.Request, session: Session | None) -> None:
        """Put the session on ``g`` (read it through `current_auth`)."""
        # On the object behind the proxy: each attribute access through a
        # LocalProxy costs about a microsecond.
        setattr(g._get_current_object(), G_ATTRIBUTE, session)

    def reject(self, request: flask.Request, error: AuthError) -> Any:
        """Raise the [`AuthHTTPException`][clerkguard.flask.AuthHTTPException] for ``error``."""
        raise AuthHTTPException.for_error(error) from None

    def options_response(self, request: flask.Request) -> flask.Response:
        """Flask's default ``OPTIONS`` answer (``Allow``), as a ``204``."""
        return _pallets.no_content(current_app.make_default_options_response())

    def auth_for(self, request: flask.Request) -> ClerkAuth:
        """The app's [`ClerkAuth`][clerkguard.auth.ClerkAuth] (from the extension, else built from
        config/env)."""
        return _pallets.app_state(current_app._get_current_object()).auth  # type: ignore[attr-defined]

    def call_sync(self, handler: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the view the way Flask does (async views on a fresh loop)."""
        if inspect.iscoroutinefunction(handler):  # what ensure_sync checks
            return current_app.ensure_sync(handler)(*args, **kwargs)
        return handler(*args, **kwargs)

    # -- webhooks ------------------------------------------------------------------------------
    def body(self, request: flask.Request, limit: int) -> bytes:
        """The raw body, read with ``limit`` as this request's ``max_content_length``.

        werkzeug then stops a longer body (declared or chunked) after ``limit``
        bytes instead of buffering it whole.
        """
        current = request.max_content_length
        if current is None or current > limit:
            request.max_content_length = limit
        try:
            return request.get_data(cache=True)
        except http.RequestEntityTooLarge:
            raise WebhookError("body-too-large", "the body is over the size limit") from None

    def json_response(self, request: flask.Request, status: int, content: Any) -> flask.Response:
        """A JSON response."""
        return current_app.response_class(json.dumps(content), status=status, mimetype="application/json")

    def webhook_secret(self, request: Any) -> str | None:
        """``app.config["CLERK_WEBHOOK_SIGNING_SECRET"]`` (a string, or a list during a rotation)."""
        return _pallets.config_secret(current_app.config)

    def store_webhook(self, request: flask.Request, event: WebhookEvent) -> None:
        """Put the event on ``g`` (read it through `current_webhook`)."""
        setattr(g, G_WEBHOOK, event)


#: ``@require_auth`` / ``@require_auth(authorize=..., optional=..., role=..., auth=...)``.
require_auth: RequireAuth = build_require_auth(FlaskAdapter())


#: ``@require_webhook`` / ``@require_webhook(events=[...], secret=..., dedupe=...)``: a Clerk
#: webhook endpoint (see `clerkguard.webhooks`); the event is `current_webhook`.
require_webhook: RequireWebhook = build_require_webhook(FlaskAdapter())
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
#: (``optional=True``, ``OPTIONS``); use ``if current_auth:``, not ``is None``,
#: or call [`get_auth`][clerkguard.flask.get_auth].
current_auth: Session = cast(Session, LocalProxy(get_auth))


def get_credential() -> Credential | None:
    """The credential a guard verified for this request, of any kind; ``None`` when there is none.

    The same object as [`get_auth`][clerkguard.flask.get_auth], typed for routes
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
    blueprint: flask.Blueprint | flask.Flask, **options: Unpack[GuardKwargs]
) -> Guard[flask.Request]:
    """Guard every view of ``blueprint`` (or a whole app) in one line.

    Registers a ``before_request`` hook running one guard with the options
    of ``require_auth(...)`` (``role=``, ``authorize=``, ``optional=``...):

        admin = Blueprint("admin", __name__)
        guard_blueprint(admin, role="admin")

    Returns the [`Guard`][clerkguard.adapters.Guard] it installed.
    """
    guard: Guard[flask.Request] = require_auth.guard(**options)

    def clerkguard_before_request() -> flask.Response | None:
        request = flask.request._get_current_object()  # type: ignore[attr-defined]
        try:
            session = guard.check(request)
        except AuthError as error:
            raise AuthHTTPException.for_error(error) from None
        except Preflight:
            if _pallets.automatic_options(request):
                return None  # Flask answers it itself, without the view
            # The view declares OPTIONS: answer for it (a before_request response skips the view).
            return _pallets.no_content(current_app.make_default_options_response())
        setattr(g._get_current_object(), G_ATTRIBUTE, session)
        return None

    blueprint.before_request(clerkguard_before_request)
    return guard


class ClerkGuard:
    """The Flask extension: one [`ClerkAuth`][clerkguard.auth.ClerkAuth] per app, error rendering, checks.

    ``ClerkGuard(app)`` or ``guard = ClerkGuard(); guard.init_app(app)``
    (application factories). State lives in ``app.extensions["clerkguard"]``;
    the extension keeps no reference to any app.

    Args:
        app: The app to initialise now.
        auth: The [`ClerkAuth`][clerkguard.auth.ClerkAuth] for every app this extension initialises;
            when omitted, each app gets one built from its ``CLERK_*`` config
            keys, falling back to the environment.
        check_decorator_order: Refuse routes whose view was wrapped by
            ``require_auth`` only *after* the route decorator registered it
            (the guard written above ``@app.route``): a
            [`ConfigurationError`][clerkguard.ConfigurationError] at ``init_app`` for views
            registered by then, and for the others on every request to them.
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        auth: ClerkAuth | None = None,
        *,
        check_decorator_order: bool = True,
    ) -> None:
        self.auth = auth
        self.check_decorator_order = check_decorator_order
        if app is not None:
            self.init_app(app)

    #: The module's decorator, for ``guard.require_auth`` style.
    require_auth: RequireAuth = require_auth

    def init_app(self, app: flask.Flask, auth: ClerkAuth | None = None) -> None:
        """Configure ``app``: its ClerkAuth, the JSON error handler, the order check."""
        resolved = auth or self.auth or auth_from_config(app.config)
        state = _pallets.AppState(resolved)
        app.extensions[EXTENSION] = state
        app.register_error_handler(AuthHTTPException, _render)
        if not self.check_decorator_order:
            return
        _refuse_misordered(app.view_functions, unguarded_views(app.view_functions))

        def clerkguard_check_decorator_order() -> None:
            misordered = state.misordered
            if misordered is None:
                with state.lock:
                    if state.misordered is None:
                        # Complete now: Flask refuses new routes after the first request.
                        found = unguarded_views(current_app.view_functions)
                        if found:
                            what, _ = _misordered_message(
                                _misordered_views(current_app.view_functions, found)
                            )
                            logger.error("%s; those views are NOT guarded and will answer 500", what)
                        state.misordered = frozenset(found)
                misordered = state.misordered
            if misordered and flask.request.endpoint in misordered:
                _refuse_misordered(current_app.view_functions, [flask.request.endpoint])
            elif not misordered:
                # Nothing misordered, and Flask refuses new routes from now on:
                # drop this hook. A new list, so requests iterating the old one
                # are not disturbed.
                funcs = current_app.before_request_funcs
                funcs[None] = [f for f in funcs.get(None, []) if f is not clerkguard_check_decorator_order]

        app.before_request(clerkguard_check_decorator_order)

    def auth_for(self, app: flask.Flask) -> ClerkAuth:
        """The [`ClerkAuth`][clerkguard.auth.ClerkAuth] ``app`` uses."""
        return _pallets.app_state(app).auth


def _refuse_misordered(views: Mapping[str, Any], endpoints: Iterable[str | None]) -> None:
    found = _misordered_views(views, endpoints)
    if found:
        what, fix = _misordered_message(found)
        raise ConfigurationError(
            f"{what}: the route registered the unguarded function. Put {fix} below @app.route."
        )
