"""The public adapter API: everything a framework integration needs.

One code path decides for every framework. An integration supplies a small
:class:`Adapter` (named hooks: read a header, read a cookie, the method, where
the request is, store the session, turn an :class:`~clerkguard.AuthError` into
the framework's answer) and gets a ready ``require_auth`` from
:func:`build_require_auth`. clerkguard's own Flask, Quart, Litestar and Sanic
modules are written on exactly this API.

A minimal adapter for a framework we don't ship (Bottle)::

    import bottle
    from clerkguard.adapters import Adapter, build_require_auth

    class BottleAdapter(Adapter[bottle.BaseRequest]):
        def header(self, request, name):
            return request.get_header(name)
        def cookie(self, request, name):
            return request.cookies.get(name)
        def method(self, request):
            return request.method
        def find_request(self, args, kwargs):
            return bottle.request
        def store(self, request, session):
            request.environ["clerkguard.session"] = session
        def reject(self, request, error):
            return bottle.HTTPResponse(error.to_dict(), error.status, error.headers())

    require_auth = build_require_auth(BottleAdapter(auth=ClerkAuth()))
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

from asgiref.sync import async_to_sync

from .auth import Authorize, ClerkAuth
from .errors import AuthError, ConfigurationError, Forbidden, NotAuthenticated
from .rules import all_of, rules_from
from .session import Reverification, Session

__all__ = [
    "Adapter",
    "Guard",
    "GuardOptions",
    "RequireAuth",
    "TokenSource",
    "build_require_auth",
    "cookie_names_for",
    "token_from_authorization",
]

logger = logging.getLogger("clerkguard.guard")

RequestT = TypeVar("RequestT")
F = TypeVar("F", bound=Callable[..., Any])
TokenSource = Literal["header", "cookie"]

#: Clerk's session cookie (set by Clerk's frontend SDKs on the app's domain).
SESSION_COOKIE = "__session"


def cookie_names_for(auth: ClerkAuth | None) -> tuple[str, ...]:
    """Session cookie names, suffixed variant first (Clerk's multi-app cookies).

    Clerk suffixes the cookie with the first 8 characters of the base64url
    SHA-1 of the publishable key, so two apps on one domain don't collide.
    """
    pk = auth.publishable_key if auth is not None else None
    if pk is None:
        return (SESSION_COOKIE,)
    text = "pk_" + ("test" if pk.instance_type == "test" else "live") + "_"
    text += base64.b64encode(f"{pk.frontend_api}$".encode()).decode()
    digest = base64.urlsafe_b64encode(hashlib.sha1(text.encode()).digest()).decode()  # noqa: S324 - a name, not security
    return (f"{SESSION_COOKIE}_{digest[:8]}", SESSION_COOKIE)


def token_from_authorization(value: str | None) -> str | None:
    """The token of a ``Bearer`` ``Authorization`` header value.

    Returns ``None`` when there is no header or it uses another scheme
    (``Basic ...``): such a header is ignored as if absent. A Bearer header
    with empty credentials returns ``""`` (present but malformed).
    """
    if not value:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


class Adapter(Generic[RequestT]):
    """Named hooks a framework integration implements; the core drives them.

    Args:
        auth: The default :class:`ClerkAuth` for guards built on this adapter.
    """

    #: Handlers are awaited with this adapter's async wrapper when True even if
    #: they are sync functions (frameworks that need a coroutine, e.g. Quart).
    async_only: bool = False

    def __init__(self, auth: ClerkAuth | None = None) -> None:
        self.auth = auth

    def header(self, request: RequestT, name: str) -> str | None:
        """Value of request header ``name`` (case-insensitive), or ``None``."""
        raise NotImplementedError

    def cookie(self, request: RequestT, name: str) -> str | None:
        """Value of cookie ``name``, or ``None``."""
        raise NotImplementedError

    def method(self, request: RequestT) -> str:
        """The HTTP method, upper case."""
        raise NotImplementedError

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RequestT:
        """The request of a handler call (a global, a positional or a keyword)."""
        raise NotImplementedError

    def store(self, request: RequestT, session: Session | None) -> None:
        """Make the verified session (``None`` when optional/OPTIONS) reachable."""
        raise NotImplementedError

    def reject(self, request: RequestT, error: AuthError) -> Any:
        """Return the framework's error response, or raise its exception."""
        raise NotImplementedError

    def auth_for(self, request: RequestT) -> ClerkAuth:
        """The :class:`ClerkAuth` for this request (default: :attr:`auth`)."""
        if self.auth is None:
            raise ConfigurationError(
                "no ClerkAuth configured: pass auth= to the guard or initialise the extension"
            )
        return self.auth

    def call_sync(self, handler: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call a handler from the sync wrapper (Flask: ``ensure_sync``)."""
        return handler(*args, **kwargs)

    async def call_async(
        self, handler: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Call a handler from the async wrapper (Quart: ``ensure_async``)."""
        result = handler(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


@dataclass(frozen=True)
class GuardOptions:
    """What one ``require_auth(...)`` asks for.

    Attributes:
        authorize: ``authorize(session, request)``; exactly ``True`` allows.
        optional: A request without a token reaches the handler with no session
            (a token that is present must still be valid).
        token_sources: Where to look, in order: ``"header"``, ``"cookie"``.
        allow_options: Let ``OPTIONS`` (CORS preflight) through unauthenticated.
        auth: A specific :class:`ClerkAuth` for this guard.
        cookie_names: Session cookie names (default: Clerk's, derived from the key).
    """

    authorize: Authorize | None = None
    optional: bool = False
    token_sources: tuple[TokenSource, ...] = ("header", "cookie")
    allow_options: bool = True
    auth: ClerkAuth | None = None
    cookie_names: tuple[str, ...] | None = None
    rules: tuple[Any, ...] = field(default=())


class Guard(Generic[RequestT]):
    """One configured check: token extraction, verification, authorization.

    :meth:`check` (sync) and :meth:`acheck` (async) make the same decision;
    they differ only in how a JWKS fetch or an async ``authorize`` is awaited.
    Both return the session, ``None`` when the request passes without one
    (``OPTIONS``, or ``optional`` without a token), or raise :class:`AuthError`.
    """

    def __init__(self, adapter: Adapter[RequestT], options: GuardOptions) -> None:
        self.adapter = adapter
        self.options = options
        for source in options.token_sources:
            if source not in ("header", "cookie"):
                raise ConfigurationError(f"token_sources: unknown source {source!r}")
        rules = list(options.rules)
        if options.authorize is not None and not callable(options.authorize):
            raise ConfigurationError("authorize must be callable as authorize(session, request)")
        self._rules = all_of(*rules) if rules else None

    # -- pieces ------------------------------------------------------------------
    def auth(self, request: RequestT) -> ClerkAuth:
        """The ClerkAuth this guard uses for ``request``."""
        return self.options.auth or self.adapter.auth_for(request)

    def token(self, request: RequestT, auth: ClerkAuth) -> str | None:
        """The token of ``request``: a Bearer header wins, then the session cookie."""
        for source in self.options.token_sources:
            if source == "header":
                token = token_from_authorization(self.adapter.header(request, "authorization"))
                if token is not None:
                    return token
            else:
                for name in self.options.cookie_names or cookie_names_for(auth):
                    value = self.adapter.cookie(request, name)
                    if value:
                        return value
        return None

    def _authorizer(self, auth: ClerkAuth) -> Authorize | None:
        return self.options.authorize if self.options.authorize is not None else auth.authorize

    def _passes(self, request: RequestT) -> bool:
        return self.options.allow_options and self.adapter.method(request) == "OPTIONS"

    def _no_token(self) -> NotAuthenticated:
        return NotAuthenticated("token-missing", "no session token was provided", token_present=False)

    @staticmethod
    def _judge(result: object) -> None:
        if result is not True:
            raise Forbidden("authorization-denied", "the authorization rule denied this session")

    @staticmethod
    def _failed(exc: BaseException) -> Forbidden:
        # Fail closed: a crashing rule denies; the app's bug goes to the log.
        logger.warning("authorize callback raised %s; denying", type(exc).__name__, exc_info=exc)
        return Forbidden("authorization-error", "the authorization rule failed")

    # -- decisions -------------------------------------------------------------------
    def check(self, request: RequestT) -> Session | None:
        """Decide from sync code (async ``authorize`` is bridged with asgiref)."""
        if self._passes(request):
            return None
        auth = self.auth(request)
        token = self.token(request, auth)
        if token is None:
            if self.options.optional:
                return None
            raise self._no_token()
        session = auth.verify(token)
        if self._rules is not None and self._rules(session, request) is not True:
            raise Forbidden("authorization-denied", "the session lacks a required role or permission")
        authorize = self._authorizer(auth)
        if authorize is not None:
            try:
                result = authorize(session, request)
                if inspect.isawaitable(result):
                    result = async_to_sync(_await)(result)
            except AuthError:
                raise
            except Exception as exc:
                raise self._failed(exc) from None
            self._judge(result)
        return session

    async def acheck(self, request: RequestT) -> Session | None:
        """Decide from async code (a sync ``authorize`` is called inline: keep it cheap)."""
        if self._passes(request):
            return None
        auth = self.auth(request)
        token = self.token(request, auth)
        if token is None:
            if self.options.optional:
                return None
            raise self._no_token()
        session = await auth.averify(token)
        if self._rules is not None and self._rules(session, request) is not True:
            raise Forbidden("authorization-denied", "the session lacks a required role or permission")
        authorize = self._authorizer(auth)
        if authorize is not None:
            try:
                result = authorize(session, request)
                if inspect.isawaitable(result):
                    result = await result
            except AuthError:
                raise
            except Exception as exc:
                raise self._failed(exc) from None
            self._judge(result)
        return session


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class RequireAuth:
    """The ``require_auth`` decorator an adapter module exports.

    Usable bare (``@require_auth``) or configured (``@require_auth(...)``).
    Configured keywords: ``authorize``, ``optional``, ``auth``,
    ``token_sources``, ``allow_options``, ``cookie_names`` and the rule
    shorthands ``role``, ``permission``, ``feature``, ``plan``,
    ``reverification``, ``org`` (all must hold, plus ``authorize``).
    """

    def __init__(
        self,
        adapter: Adapter[Any],
        wrap: Callable[[Callable[..., Any], Guard[Any]], Callable[..., Any]] | None = None,
    ) -> None:
        self.adapter = adapter
        self._wrap = wrap or _wrap_handler

    @overload
    def __call__(self, handler: F, /) -> F: ...

    @overload
    def __call__(
        self,
        handler: None = None,
        /,
        *,
        authorize: Authorize | None = None,
        optional: bool = False,
        auth: ClerkAuth | None = None,
        token_sources: Sequence[TokenSource] = ("header", "cookie"),
        allow_options: bool = True,
        cookie_names: Iterable[str] | None = None,
        role: str | None = None,
        permission: str | None = None,
        feature: str | None = None,
        plan: str | None = None,
        reverification: str | Reverification | None = None,
        org: str | None = None,
    ) -> Callable[[F], F]: ...

    def __call__(
        self,
        handler: Callable[..., Any] | None = None,
        /,
        *,
        authorize: Authorize | None = None,
        optional: bool = False,
        auth: ClerkAuth | None = None,
        token_sources: Sequence[TokenSource] = ("header", "cookie"),
        allow_options: bool = True,
        cookie_names: Iterable[str] | None = None,
        role: str | None = None,
        permission: str | None = None,
        feature: str | None = None,
        plan: str | None = None,
        reverification: str | Reverification | None = None,
        org: str | None = None,
    ) -> Any:
        options = GuardOptions(
            authorize=authorize,
            optional=optional,
            token_sources=tuple(token_sources),
            allow_options=allow_options,
            auth=auth,
            cookie_names=tuple(cookie_names) if cookie_names is not None else None,
            rules=tuple(
                rules_from(
                    role=role,
                    permission=permission,
                    feature=feature,
                    plan=plan,
                    reverification=reverification,
                    org=org,
                )
            ),
        )
        guard: Guard[Any] = Guard(self.adapter, options)
        if handler is not None:
            if not callable(handler):
                raise TypeError("require_auth takes a handler, or keyword options only")
            return self._wrap(handler, guard)
        return lambda fn: self._wrap(fn, guard)

    def guard(self, **options: Any) -> Guard[Any]:
        """A :class:`Guard` with these options, for frameworks' native hooks."""
        rule_keys = ("role", "permission", "feature", "plan", "reverification", "org")
        rules = rules_from(**{k: options.pop(k) for k in rule_keys if k in options})
        return Guard(self.adapter, GuardOptions(rules=tuple(rules), **options))


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _wrap_handler(handler: Callable[..., Any], guard: Guard[Any]) -> Callable[..., Any]:
    """The default wrapper: same sync/async kind as the handler, metadata kept."""
    adapter = guard.adapter
    if _is_async(handler) or adapter.async_only:

        @functools.wraps(handler)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            request = adapter.find_request(args, kwargs)
            try:
                session = await guard.acheck(request)
            except AuthError as error:
                return adapter.reject(request, error)
            adapter.store(request, session)
            return await adapter.call_async(handler, args, kwargs)

        async_wrapper.__clerkguard__ = guard  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(handler)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        request = adapter.find_request(args, kwargs)
        try:
            session = guard.check(request)
        except AuthError as error:
            return adapter.reject(request, error)
        adapter.store(request, session)
        return adapter.call_sync(handler, args, kwargs)

    sync_wrapper.__clerkguard__ = guard  # type: ignore[attr-defined]
    return sync_wrapper


def build_require_auth(
    adapter: Adapter[Any],
    wrap: Callable[[Callable[..., Any], Guard[Any]], Callable[..., Any]] | None = None,
) -> RequireAuth:
    """Build the ``require_auth`` decorator for a framework.

    Args:
        adapter: The framework's hooks.
        wrap: Optional custom wrapper builder ``(handler, guard) -> wrapped``
            for frameworks that inspect signatures (Litestar) or pass the
            request in unusual places. The default keeps the handler's kind
            (sync/async), name, docstring and signature (``functools.wraps``).
    """
    return RequireAuth(adapter, wrap)
