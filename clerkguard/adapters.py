"""The public adapter API: everything a framework integration needs.

One code path decides for every framework. An integration supplies a small
:class:`Adapter` (named hooks: read a header, read a cookie, the method, where
the request is, store the session, turn an :class:`~clerkguard.AuthError` into
the framework's answer) and gets a ready ``require_auth`` from
:func:`build_require_auth`. clerkguard's own Flask, Quart, Litestar and
Sanic modules are written on exactly this API.

A minimal adapter for a framework we don't ship (the complete, tested version
is ``examples/bottle_adapter.py``)::

    import bottle
    from clerkguard import ClerkAuth
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
            return bottle.HTTPResponse(json.dumps(error.to_dict()), error.status, error.headers())

    require_auth = build_require_auth(BottleAdapter(auth=ClerkAuth()))

What a guard decides (design section 7): ``OPTIONS`` passes untouched; the
token comes from a ``Bearer`` ``Authorization`` header, else Clerk's session
cookie; a Bearer header wins even when invalid, any other scheme is ignored;
then the token is verified, the shorthand rules and ``authorize(session,
request)`` must each return exactly ``True`` (anything else, including an
exception, is a 403).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

from asgiref.sync import async_to_sync

from .auth import Authorize, ClerkAuth
from .config import ENV_VARS, PublishableKey
from .errors import AuthError, ConfigurationError, Forbidden, NotAuthenticated
from .rules import Rule, all_of, rules_from
from .session import Reverification, Session

__all__ = [
    "Adapter",
    "Guard",
    "GuardOptions",
    "RequireAuth",
    "SESSION_COOKIE",
    "TokenSource",
    "auth_from_config",
    "build_require_auth",
    "cookie_names_for",
    "guard_of",
    "token_from_authorization",
    "unguarded_views",
]

logger = logging.getLogger("clerkguard.guard")

RequestT = TypeVar("RequestT")
F = TypeVar("F", bound=Callable[..., Any])
TokenSource = Literal["header", "cookie"]

#: Clerk's session cookie (set by Clerk's frontend SDKs on the app's domain).
SESSION_COOKIE = "__session"

#: Handlers a guard has wrapped, by identity (weak: never keeps a function alive).
#: Lets :func:`unguarded_views` spot a guard applied *above* a route decorator.
_WRAPPED: weakref.WeakKeyDictionary[Any, None] = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=64)
def _cookie_names(pk: PublishableKey | None) -> tuple[str, ...]:
    if pk is None:
        return (SESSION_COOKIE,)
    # Clerk hashes the key exactly as written (its keys carry no base64
    # padding), so the key is never rebuilt from the parsed host.
    digest = base64.urlsafe_b64encode(hashlib.sha1(pk.key.encode()).digest()).decode()  # noqa: S324 - a name, not security
    return (f"{SESSION_COOKIE}_{digest[:8]}", SESSION_COOKIE)


def cookie_names_for(auth: ClerkAuth | None) -> tuple[str, ...]:
    """Session cookie names, suffixed variant first (Clerk's multi-app cookies).

    Clerk suffixes the cookie with the first 8 characters of the base64url
    SHA-1 of the publishable key, so two apps on one domain don't collide.
    """
    return _cookie_names(auth.publishable_key if auth is not None else None)


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

    Subclass it, implement the six hooks that raise :class:`NotImplementedError`,
    and pass an instance to :func:`build_require_auth`. Override
    :meth:`auth_for`, :meth:`call_sync` and :meth:`call_async` when the
    framework keeps its configuration on the app or runs handlers its own way.

    Args:
        auth: The default :class:`ClerkAuth` for guards built on this adapter.
    """

    #: Always build an async wrapper, even around sync handlers (frameworks
    #: that need a coroutine, e.g. Quart: sync views then run via ``call_async``).
    async_only: bool = False
    #: Always build a sync wrapper, even around async handlers (Flask: each async
    #: view runs on a fresh event loop, so the guard uses the sync key fetcher
    #: and ``call_sync`` runs the coroutine function).
    sync_only: bool = False

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

    def await_sync(self, awaitable: Awaitable[Any]) -> Any:
        """Wait for an async ``authorize`` result from the sync check.

        The default bridges with asgiref, as Django's ``user_passes_test``
        does for async tests. Override it for sync handlers that run on an
        event loop thread (Litestar's ``sync_to_thread=False``), where asgiref
        refuses to bridge.
        """
        return async_to_sync(_await)(awaitable)


@dataclass(frozen=True)
class GuardOptions:
    """What one ``require_auth(...)`` asks for."""

    authorize: Authorize | None = None
    """``authorize(session, request)``, sync or async; exactly ``True`` allows.
    Wins over the :class:`ClerkAuth`'s default ``authorize``."""
    optional: bool = False
    """A request without a token reaches the handler with no session (a token
    that is present must still be valid)."""
    token_sources: tuple[TokenSource, ...] = ("header", "cookie")
    """Where to look, in order: ``"header"`` (``Authorization: Bearer``), ``"cookie"``."""
    allow_options: bool = True
    """Let ``OPTIONS`` (CORS preflight) through to the framework unauthenticated."""
    auth: ClerkAuth | None = None
    """A specific :class:`ClerkAuth` for this guard (apps with several Clerk instances)."""
    cookie_names: tuple[str, ...] | None = None
    """Session cookie names (default: Clerk's ``__session`` and its suffixed variant)."""
    rules: tuple[Rule, ...] = field(default=())
    """Rules that must all hold before ``authorize`` runs (from ``role=``, ``permission=``...)."""


class Guard(Generic[RequestT]):
    """One configured check: token extraction, verification, authorization.

    :meth:`check` (sync) and :meth:`acheck` (async) make the same decision;
    they differ only in how a JWKS fetch or an async ``authorize`` is awaited.
    Both return the session, ``None`` when the request passes without one
    (``OPTIONS``, or ``optional`` without a token), or raise :class:`AuthError`.
    """

    __slots__ = ("_cookies_first", "_rule", "_sources", "adapter", "options")

    def __init__(self, adapter: Adapter[RequestT], options: GuardOptions) -> None:
        self.adapter = adapter
        self.options = options
        for source in options.token_sources:
            if source not in ("header", "cookie"):
                raise ConfigurationError(f"token_sources: unknown source {source!r}")
        if not options.token_sources:
            raise ConfigurationError("token_sources: name at least one of 'header', 'cookie'")
        if options.authorize is not None and not callable(options.authorize):
            raise ConfigurationError("authorize must be callable as authorize(session, request)")
        if options.cookie_names is not None and not all(options.cookie_names):
            raise ConfigurationError("cookie_names must be a sequence of non-empty names")
        self._sources = options.token_sources
        rules = options.rules
        self._rule: Rule | None = (rules[0] if len(rules) == 1 else all_of(*rules)) if rules else None

    # -- pieces ------------------------------------------------------------------
    def auth(self, request: RequestT) -> ClerkAuth:
        """The ClerkAuth this guard uses for ``request``."""
        return self.options.auth or self.adapter.auth_for(request)

    def token(self, request: RequestT, auth: ClerkAuth) -> str | None:
        """The token of ``request``: a Bearer header wins, then the session cookie.

        ``None`` means no token at all; ``""`` a Bearer header without credentials.
        """
        for source in self._sources:
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

    def _start(self, request: RequestT) -> tuple[ClerkAuth, str] | None:
        """Everything before verification; ``None`` = pass without a session."""
        if self.options.allow_options and self.adapter.method(request) == "OPTIONS":
            return None
        auth = self.options.auth or self.adapter.auth_for(request)
        token = self.token(request, auth)
        if token is None:
            if self.options.optional:
                return None
            raise NotAuthenticated("token-missing", "no session token was provided", token_present=False)
        if not token:
            # "Authorization: Bearer" with nothing after it was sent: a bad
            # token, not an absent one (and it still wins over the cookie).
            raise NotAuthenticated("token-malformed", "the Bearer credentials are empty")
        return auth, token

    def _callbacks(self, auth: ClerkAuth) -> tuple[tuple[Rule, str], ...]:
        authorize = self.options.authorize if self.options.authorize is not None else auth.authorize
        if self._rule is None:
            return () if authorize is None else ((authorize, "authorize"),)
        if authorize is None:
            return ((self._rule, "rules"),)
        return ((self._rule, "rules"), (authorize, "authorize"))

    @staticmethod
    def _denied(result: object, what: str) -> None:
        if result is not True:
            if what == "rules":
                raise Forbidden("authorization-denied", "the session lacks a required role or permission")
            raise Forbidden("authorization-denied", "the authorization rule denied this session")

    @staticmethod
    def _failed(exc: BaseException) -> Forbidden:
        # Fail closed: a crashing rule denies; the app's bug goes to the log
        # (the exception, never the token: sessions hold claims only).
        logger.warning("authorize callback raised %s; denying", type(exc).__name__, exc_info=exc)
        return Forbidden("authorization-error", "the authorization rule failed")

    # -- decisions -------------------------------------------------------------------
    def check(self, request: RequestT) -> Session | None:
        """Decide from sync code (an async ``authorize`` is bridged with asgiref)."""
        started = self._start(request)
        if started is None:
            return None
        auth, token = started
        session = auth.verify(token)
        for callback, what in self._callbacks(auth):
            result: object = None
            try:
                result = callback(session, request)
                if result is not True and inspect.isawaitable(result):
                    result = self.adapter.await_sync(result)
            except AuthError:
                raise
            except Exception as exc:
                if inspect.iscoroutine(result):
                    result.close()  # never started (the bridge refused): no "never awaited" leak
                raise self._failed(exc) from None
            self._denied(result, what)
        return session

    async def acheck(self, request: RequestT) -> Session | None:
        """Decide from async code (a sync ``authorize`` is called inline: keep it cheap)."""
        started = self._start(request)
        if started is None:
            return None
        auth, token = started
        session = await auth.averify(token)
        for callback, what in self._callbacks(auth):
            try:
                result = callback(session, request)
                if result is not True and inspect.isawaitable(result):
                    result = await result
            except AuthError:
                raise
            except Exception as exc:
                raise self._failed(exc) from None
            self._denied(result, what)
        return session


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


_OPTION_NAMES = frozenset(
    {"authorize", "optional", "auth", "token_sources", "allow_options", "cookie_names"}
    | {"role", "permission", "feature", "plan", "reverification", "org"}
)


def _options(
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
) -> GuardOptions:
    if isinstance(token_sources, str):
        raise ConfigurationError("token_sources must be a sequence such as ('header', 'cookie')")
    if isinstance(cookie_names, str):
        raise ConfigurationError("cookie_names must be a sequence of names, not one string")
    if auth is not None and not isinstance(auth, ClerkAuth):
        raise ConfigurationError("auth must be a clerkguard.ClerkAuth")
    return GuardOptions(
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


class RequireAuth:
    """The ``require_auth`` decorator an adapter module exports.

    Usable bare (``@require_auth``) or configured (``@require_auth(...)``).
    Configured keywords: ``authorize``, ``optional``, ``auth``,
    ``token_sources``, ``allow_options``, ``cookie_names`` and the rule
    shorthands ``role``, ``permission``, ``feature``, ``plan``,
    ``reverification``, ``org`` (all must hold, plus ``authorize``).
    Options are checked when the decorator is applied, not at the first request.
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

    def __call__(self, handler: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        guard = self.guard(**options)
        if handler is not None:
            if options:
                raise TypeError("use @require_auth or @require_auth(**options), not both")
            if not callable(handler):
                raise TypeError("require_auth takes a handler, or keyword options only")
            return self._wrap(handler, guard)
        wrap = self._wrap

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(fn):
                raise TypeError("require_auth(...) decorates a handler")
            return wrap(fn, guard)

        return decorator

    def guard(self, **options: Any) -> Guard[Any]:
        """A :class:`Guard` with these options, for frameworks' native hooks.

        Takes the same keywords as ``require_auth(...)``; used e.g. by
        ``clerkguard.flask.guard_blueprint`` in a ``before_request`` hook.
        """
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise TypeError(f"require_auth() got unknown option(s): {', '.join(unknown)}")
        return Guard(self.adapter, _options(**options))


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    # A callable object with an ``async def __call__`` is an async handler too.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _remember(handler: Callable[..., Any]) -> None:
    try:
        _WRAPPED[handler] = None
    except TypeError:  # not weak-referenceable (a builtin): nothing to track
        pass


def _wrap_handler(handler: Callable[..., Any], guard: Guard[Any]) -> Callable[..., Any]:
    """The default wrapper: same sync/async kind as the handler, metadata kept.

    ``functools.wraps`` copies name, docstring, module and ``__wrapped__``, so
    ``inspect.signature(wrapper)`` is the handler's signature.
    """
    adapter = guard.adapter
    _remember(handler)
    if not adapter.sync_only and (adapter.async_only or _is_async(handler)):

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


def guard_of(handler: Callable[..., Any]) -> Guard[Any] | None:
    """The outermost :class:`Guard` on ``handler`` (following ``__wrapped__``), or ``None``."""
    seen = 0
    fn: Any = handler
    while fn is not None and seen < 100:  # bounded: a __wrapped__ cycle must not hang
        guard = getattr(fn, "__clerkguard__", None)
        if isinstance(guard, Guard):
            return guard
        fn = getattr(fn, "__wrapped__", None)
        seen += 1
    return None


def unguarded_views(view_functions: Mapping[str, Callable[..., Any]]) -> list[str]:
    """Endpoints registered with a handler that ``require_auth`` wrapped *afterwards*.

    The classic silent bypass: with the guard above the route decorator::

        @require_auth          # wraps the function AFTER ...
        @app.route("/secret")  # ... this registered the bare function
        def secret(): ...

    the framework serves the bare, unguarded function. Such a function is
    registered *and* was wrapped by a guard; a correctly ordered route
    registers the wrapper instead. Adapters call this at startup and on the
    first request with the framework's ``endpoint -> view`` mapping.
    """
    return sorted(
        endpoint for endpoint, view in view_functions.items() if _is_wrapped(view) and guard_of(view) is None
    )


def _is_wrapped(view: Callable[..., Any]) -> bool:
    try:
        return view in _WRAPPED
    except TypeError:
        return False


def auth_from_config(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ClerkAuth:
    """A :class:`ClerkAuth` from an app's ``CLERK_*`` settings, then the environment.

    ``config`` is a framework's configuration mapping (Flask/Quart/Sanic
    ``app.config``); each ``CLERK_*`` variable of :data:`clerkguard.config.ENV_VARS`
    found there wins over the process environment (``CLERK_AUTHORIZED_PARTIES``
    may be a list). For any other option, build the ``ClerkAuth`` yourself.
    """
    merged = dict(os.environ if env is None else env)
    for variable in ENV_VARS.values():
        value = config.get(variable)
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            value = ",".join(value)
        merged[variable] = str(value)
    return ClerkAuth(env=merged)


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
