"""Django integration: ``@require_auth`` for views, a lazy ``request.auth`` middleware.



    # views.py
    from django.http import JsonResponse
    from clerkguard.django import require_auth

    @require_auth(role="admin")          # sync or async views
    def me(request):
        return JsonResponse({"user_id": request.auth.user_id})

Configuration comes from ``settings.CLERK_*`` (``CLERK_PUBLISHABLE_KEY``,
``CLERK_JWKS_URI``, ...), then the environment, or from ``settings.CLERK_AUTH``
(a ready [`ClerkAuth`][clerkguard.ClerkAuth]); a guard may name its own with
``auth=``. One ``ClerkAuth`` is built per configuration and reused; changing a
``CLERK_*`` setting (``override_settings`` in tests) builds a new one.

Glue only: every decision is [`clerkguard.adapters.Guard`][clerkguard.adapters.Guard]'s. Async views
get an async wrapper that verifies with ``averify`` (a cold key fetch never
blocks the event loop); sync views a sync one. Rejections are
`JsonResponse` answers ``{"error": ..., "reason": ..., "detail": ...}``
with ``WWW-Authenticate`` (and ``Retry-After`` on 503).

CSRF: a guarded view is marked ``csrf_exempt``. A browser never attaches an
``Authorization: Bearer`` header by itself, so Bearer requests need no CSRF
token; requests authenticated by Clerk's ``__session`` cookie are defended by
the guard's own cookie-path checks instead of Django's token (see
``docs/django.md``). Views without the guard keep Django's CSRF protection.
"""

from __future__ import annotations

try:
    import django  # noqa: F401 - imported first only to name the missing extra
except ImportError as exc:  # tested by hiding django from sys.modules
    from .errors import MissingDependencyError

    raise MissingDependencyError("django", "django") from exc

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.functional import SimpleLazyObject
from django.views.generic import View
from typing_extensions import Unpack

from ._webhook_guard import RequireWebhook, WebhookGuard, build_require_webhook, wrap_webhook_handler
from .adapters import (
    _ENDPOINT_ONLY,
    Adapter,
    Guard,
    GuardKwargs,
    Preflight,
    RequireAuth,
    _wrap_handler,  # the default wrapper, reused (not re-implemented)
    auth_from_config,
    build_require_auth,
)
from .auth import ClerkAuth
from .config import ENV_VARS
from .errors import AuthError, ConfigurationError, WebhookError
from .machine import Credential
from .session import Session

__all__ = [
    "DjangoAdapter",
    "build_clerk_middleware",
    "clerk_middleware",
    "error_response",
    "get_clerk_auth",
    "require_auth",
    "require_webhook",
]

logger = logging.getLogger("clerkguard.django")

#: The setting that may hold a ready [`ClerkAuth`][clerkguard.ClerkAuth] (wins over ``CLERK_*``).
AUTH_SETTING = "CLERK_AUTH"
#: Every setting this module reads; changing one (``override_settings``) drops the cached ClerkAuth.
SETTINGS = frozenset({AUTH_SETTING, *ENV_VARS.values()})

#: What ``OPTIONS`` to a guarded function view answers ``Allow`` with: Django
#: dispatches every method to a function view (class-based views list their own).
FUNCTION_VIEW_METHODS = ", ".join(m.upper() for m in View.http_method_names)


# -- configuration ---------------------------------------------------------------------------------
class _SettingsAuth:
    """The ClerkAuth built from settings, built once (thread-safe) and dropped on change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._auth: ClerkAuth | None = None
        self._built = False  # whether _auth is ours to close (not the user's CLERK_AUTH)

    def get(self) -> ClerkAuth:
        auth = self._auth
        if auth is not None:
            return auth
        with self._lock:
            if self._auth is None:
                self._auth, self._built = _from_settings()
            return self._auth

    def reset(self) -> None:
        with self._lock:
            auth, built = self._auth, self._built
            self._auth, self._built = None, False
        if auth is not None and built:
            auth.close()  # stops its refresher thread; requests in flight finish their verify


def _from_settings() -> tuple[ClerkAuth, bool]:
    configured = getattr(settings, AUTH_SETTING, None)
    if configured is not None:
        if not isinstance(configured, ClerkAuth):
            raise ConfigurationError(f"settings.{AUTH_SETTING} must be a clerkguard.ClerkAuth")
        return configured, False
    values = {name: getattr(settings, name) for name in ENV_VARS.values() if hasattr(settings, name)}
    return auth_from_config(values), True


_settings_auth = _SettingsAuth()


def get_clerk_auth() -> ClerkAuth:
    """The project's [`ClerkAuth`][clerkguard.ClerkAuth]: ``settings.CLERK_AUTH``, else
    one built from ``settings.CLERK_*`` then the environment (built once, reused)."""
    return _settings_auth.get()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in SETTINGS:
        _settings_auth.reset()


setting_changed.connect(_on_setting_changed, dispatch_uid="clerkguard.django.settings")


# -- the adapter -----------------------------------------------------------------------------------
def error_response(error: AuthError) -> JsonResponse:
    """The JSON answer for ``error``: ``{"error": ..., "reason": ..., "detail": ...}`` plus its headers."""
    return JsonResponse(error.to_dict(), status=error.status, headers=error.headers())


def _meta_key(name: str) -> str:
    upper = name.upper().replace("-", "_")
    return upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper


class DjangoAdapter(Adapter[HttpRequest]):
    """clerkguard's hooks for Django views (``HttpRequest`` first argument)."""

    def header(self, request: HttpRequest, name: str) -> str | None:
        """A request header from ``request.META``."""
        value = request.META.get(_meta_key(name))
        return value if isinstance(value, str) else None

    def header_values(self, request: HttpRequest, name: str) -> Sequence[str]:
        """Every value of header ``name``, one per header line where the server keeps them.

        Under ASGI the lines come from ``scope["headers"]`` as received. WSGI
        servers fold repeated headers into one comma-joined value before Django
        sees it (so does ``ASGIRequest.META``): that single value is returned,
        and the core refuses a folded ``Authorization`` just the same.
        """
        scope = getattr(request, "scope", None)
        if isinstance(scope, dict):
            wanted = name.lower().encode("latin-1")
            return [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == wanted]
        value = self.header(request, name)
        return [] if value is None else [value]

    def method(self, request: HttpRequest) -> str:
        """The HTTP method, upper case."""
        return (request.method or "GET").upper()

    def is_websocket(self, request: HttpRequest) -> bool:
        """Never: Django views serve HTTP only (websockets are Channels' consumers)."""
        return False

    def options_response(self, request: HttpRequest) -> HttpResponse:
        """Django's own ``OPTIONS`` answer (``View.options``): ``Allow`` and no body, here 204.

        A class-based view lists the methods it implements (``View._allowed_methods``);
        a function view, to which Django dispatches every method, lists them all.
        """
        allow = FUNCTION_VIEW_METHODS
        match = getattr(request, "resolver_match", None)
        view_class = getattr(getattr(match, "func", None), "view_class", None)
        if isinstance(view_class, type) and issubclass(view_class, View):
            names: list[str] = getattr(view_class, "http_method_names", [])
            allow = ", ".join(m.upper() for m in names if hasattr(view_class, m))
        response = HttpResponse(status=204)
        response.headers["Allow"] = allow
        return response

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> HttpRequest:
        """The view's request: its first argument (also under ``method_decorator``).

        A Django REST framework ``Request`` (which wraps the ``HttpRequest``) is
        accepted as is, so ``authorize`` receives what the view receives.
        """
        for value in (*args, *kwargs.values()):
            if isinstance(value, HttpRequest) or isinstance(getattr(value, "_request", None), HttpRequest):
                return value
        raise TypeError("@require_auth: the view was called without an HttpRequest argument")

    def store(self, request: HttpRequest, session: Session | None) -> None:
        """``request.auth`` = the verified session (``None`` for an anonymous ``optional`` request)."""
        request.auth = session

    def reject(self, request: HttpRequest, error: AuthError) -> JsonResponse:
        """The JSON error response (see [`error_response`][clerkguard.django.error_response])."""
        return error_response(error)

    # -- webhooks ------------------------------------------------------------------------------
    def body(self, request: HttpRequest, limit: int) -> bytes:
        """``request.body``: the raw bytes (Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` also applies)."""
        try:
            return bytes(request.body)
        except RequestDataTooBig:
            raise WebhookError("body-too-large", "the body is over the size limit") from None

    def json_response(self, request: HttpRequest, status: int, content: Any) -> JsonResponse:
        """A JSON response."""
        return JsonResponse(dict(content), status=status)

    def webhook_secret(self, request: HttpRequest) -> str | None:
        """``settings.CLERK_WEBHOOK_SIGNING_SECRET`` (a string, or a list during a rotation)."""
        value = getattr(settings, WEBHOOK_SECRET_SETTING, None)
        if isinstance(value, (list, tuple)):
            return ", ".join(value)
        return value if isinstance(value, str) else None

    def store_webhook(self, request: HttpRequest, event: Any) -> None:
        """``request.clerk_webhook`` = the verified event."""
        request.clerk_webhook = event

    def auth_for(self, request: HttpRequest) -> ClerkAuth:
        """This adapter's ClerkAuth, else the project's
        ([`get_clerk_auth`][clerkguard.django.get_clerk_auth])."""
        return self.auth if self.auth is not None else _settings_auth.get()


def _async_dispatch(handler: Callable[..., Any]) -> Callable[..., Any]:
    """An ``async def`` stand-in for ``dispatch`` of an async class-based view.

    ``method_decorator(require_auth, name="dispatch")`` hands the guard a
    ``partial`` of the bound, *sync* ``View.dispatch``, which returns the async
    handler's coroutine. Guarded as a sync callable, the check would run on the
    event loop (a cold key fetch would block it, an async ``authorize`` could
    not be awaited); this makes it an async view for the guard, as it is for Django.
    """
    bound = handler.func if isinstance(handler, functools.partial) else handler
    view = getattr(bound, "__self__", None)
    if not (isinstance(view, View) and getattr(bound, "__name__", "") == "dispatch" and view.view_is_async):
        return handler

    @functools.wraps(handler)
    async def dispatch(*args: Any, **kwargs: Any) -> Any:
        return await handler(*args, **kwargs)

    return dispatch


def _wrap_view(handler: Callable[..., Any], guard: Guard[Any]) -> Callable[..., Any]:
    """The core's wrapper (same sync/async kind as the view), marked ``csrf_exempt``."""
    wrapped = _wrap_handler(_async_dispatch(handler), guard)
    # What django.views.decorators.csrf.csrf_exempt sets; CsrfViewMiddleware
    # reads it on the view (View.as_view copies it from a decorated ``dispatch``).
    wrapped.csrf_exempt = True  # type: ignore[attr-defined]
    return wrapped


#: ``@require_auth`` / ``@require_auth(role=..., authorize=..., optional=..., auth=...)`` for
#: Django function views (sync or async) and, through ``method_decorator``, class-based views.
require_auth: RequireAuth = build_require_auth(DjangoAdapter(), _wrap_view)

#: The setting read for the webhook signing secret (then the environment variable of that name).
WEBHOOK_SECRET_SETTING = "CLERK_WEBHOOK_SIGNING_SECRET"


def _wrap_webhook_view(handler: Callable[..., Any], guard: WebhookGuard[Any]) -> Callable[..., Any]:
    """The webhook wrapper (same sync/async kind as the view), marked ``csrf_exempt``.

    Svix's POST carries no CSRF token and no cookie: the signature is the
    authentication, so Django's CSRF check must not refuse it.
    """
    wrapped = wrap_webhook_handler(_async_dispatch(handler), guard)
    wrapped.csrf_exempt = True  # type: ignore[attr-defined]
    return wrapped


#: ``@require_webhook`` / ``@require_webhook(events=[...], secret=..., dedupe=...)``: a Clerk webhook
#: view (sync or async; see `clerkguard.webhooks`). The event is ``request.clerk_webhook``; the
#: secret defaults to ``settings.CLERK_WEBHOOK_SIGNING_SECRET``, then the environment.
require_webhook: RequireWebhook = build_require_webhook(DjangoAdapter(), _wrap_webhook_view)


# -- middleware --------------------------------------------------------------------------------------
Middleware = Callable[[Callable[[HttpRequest], Any]], Callable[[HttpRequest], Any]]


def _credential_or_none(guard: Guard[HttpRequest], request: HttpRequest) -> Credential | None:
    try:
        return guard.check(request)
    except AuthError as error:
        logger.debug("middleware: no credential (%s)", error.reason)
    except Preflight:
        pass
    return None


async def _acredential_or_none(guard: Guard[HttpRequest], request: HttpRequest) -> Credential | None:
    try:
        return await guard.acheck(request)
    except AuthError as error:
        logger.debug("middleware: no credential (%s)", error.reason)
    except Preflight:
        pass
    return None


class _Memo:
    """One verdict per request, whichever of ``request.auth`` / ``await request.aauth()`` asks first."""

    __slots__ = ("credential", "done", "guard", "request")

    def __init__(self, guard: Guard[HttpRequest], request: HttpRequest) -> None:
        self.guard = guard
        self.request = request
        self.done = False
        self.credential: Credential | None = None

    def sync(self) -> Credential | None:
        if not self.done:
            self.credential, self.done = _credential_or_none(self.guard, self.request), True
        return self.credential

    async def aio(self) -> Credential | None:
        if not self.done:
            self.credential, self.done = await _acredential_or_none(self.guard, self.request), True
        return self.credential


def _attach(guard: Guard[HttpRequest], request: HttpRequest) -> None:
    memo = _Memo(guard, request)
    request.auth = SimpleLazyObject(memo.sync)
    request.aauth = memo.aio


def build_clerk_middleware(**options: Unpack[GuardKwargs]) -> Middleware:
    """A [`clerk_middleware`][clerkguard.django.clerk_middleware] with token options, for ``MIDDLEWARE``.

    ``MIDDLEWARE`` names import paths, so bind the result to a name in your project::

        # myproject/middleware.py
        from clerkguard.django import build_clerk_middleware

        clerk_any = build_clerk_middleware(accepts_token="any")

        # settings.py: MIDDLEWARE = [..., "myproject.middleware.clerk_any"]

    Args:
        options: The token options of ``require_auth``: ``accepts_token``
            (the same values and meaning; default session tokens only;
            machine credentials from the ``Authorization: Bearer`` header
            only), ``auth``, ``token_sources``, ``cookie_names``,
            ``check_client_uat``, ``check_origin``, ``trusted_origins``.
            Rules, ``authorize``, ``optional`` and ``allow_options`` belong
            to the views (``@require_auth``) and raise ``TypeError``.
    """
    refused = sorted(set(options) & _ENDPOINT_ONLY)
    if refused:
        raise TypeError(
            f"build_clerk_middleware() does not take {', '.join(refused)}: use @require_auth on the views"
        )
    options["optional"] = True  # no token: no credential, and the view decides
    guard: Guard[HttpRequest] = require_auth.guard(**options)

    def clerk_middleware(get_response: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
        """Django middleware: ``request.auth`` (lazy) and ``await request.aauth()`` on every request.

        Add ``"clerkguard.django.clerk_middleware"`` to ``MIDDLEWARE`` (or a
        middleware of your own made by
        [`build_clerk_middleware`][clerkguard.django.build_clerk_middleware]). It
        never refuses a request: ``request.auth`` is the verified
        [`Session`][clerkguard.Session] (a
        [`MachineCredential`][clerkguard.MachineCredential] when ``accepts_token``
        takes machine kinds) or, without a (valid) token, a lazy object around
        ``None`` (falsy: test it with ``if request.auth:``). Nothing is verified
        until a view or template reads it; async code should ``await
        request.aauth()`` (the credential or ``None``), which never blocks the
        event loop. ``@require_auth`` replaces ``request.auth`` with its own
        verdict on the views it guards.

        Sync and async capable; which wrapper it returns is decided once, here.
        """
        if iscoroutinefunction(get_response):

            async def async_middleware(request: HttpRequest) -> Any:
                _attach(guard, request)
                return await get_response(request)

            markcoroutinefunction(async_middleware)
            return async_middleware

        def middleware(request: HttpRequest) -> Any:
            _attach(guard, request)
            return get_response(request)

        return middleware

    # What @django.utils.decorators.sync_and_async_middleware sets (untyped, so not applied as one).
    clerk_middleware.sync_capable = True  # type: ignore[attr-defined]
    clerk_middleware.async_capable = True  # type: ignore[attr-defined]
    return clerk_middleware


clerk_middleware: Middleware = build_clerk_middleware()
"""``"clerkguard.django.clerk_middleware"`` in ``MIDDLEWARE``: a lazy ``request.auth`` (the
verified [`Session`][clerkguard.Session] or a falsy lazy ``None``) and ``await
request.aauth()`` on every request, never refusing one. Session tokens only; for machine
tokens see [`build_clerk_middleware`][clerkguard.django.build_clerk_middleware]."""
