"""The public adapter API: everything a framework integration needs.

One code path decides for every framework. An integration supplies a small
[`Adapter`][clerkguard.adapters.Adapter] (named hooks: read a header, the method, where the request
is, store the session, turn an [`AuthError`][clerkguard.AuthError] into the
framework's answer, the framework's default ``OPTIONS`` answer) and gets a
ready ``require_auth`` from [`build_require_auth`][clerkguard.adapters.build_require_auth]. clerkguard's own
Flask, Quart, Litestar and Sanic modules are written on exactly this API.

A minimal adapter for a framework we don't ship (the complete, tested version
is ``examples/bottle_adapter.py``):

    import bottle
    from clerkguard import ClerkAuth
    from clerkguard.adapters import Adapter, build_require_auth

    class BottleAdapter(Adapter[bottle.BaseRequest]):
        def header(self, request, name):
            return request.get_header(name)
        def method(self, request):
            return request.method
        def find_request(self, args, kwargs):
            return bottle.request
        def store(self, request, session):
            request.environ["clerkguard.session"] = session
        def reject(self, request, error):
            return bottle.HTTPResponse(json.dumps(error.to_dict()), error.status, error.headers())
        def options_response(self, request):
            return bottle.HTTPResponse(status=204, Allow="GET, HEAD, OPTIONS")

    require_auth = build_require_auth(BottleAdapter(auth=ClerkAuth()))

What a guard decides (design section 7), the same for every framework:

* ``OPTIONS`` is answered by the framework's default response
  ([`Adapter.options_response`][clerkguard.adapters.Adapter.options_response]); the handler never runs for it.
* The token comes from a ``Bearer`` ``Authorization`` header, else Clerk's
  session cookie (the raw ``Cookie`` header is parsed here, once); a Bearer
  header wins even when invalid, any other scheme is ignored; two
  Authorization credentials or two different session cookies are a 401.
* A cookie token also needs Clerk's ``__client_uat`` cookie (present,
  non-zero, not newer than the token's ``iat``), and on unsafe methods and
  websocket handshakes a same-origin or trusted ``Origin`` (403 otherwise).
* Then the token is verified, and the shorthand rules and ``authorize(session,
  request)`` must each return exactly ``True`` (anything else, including an
  exception, is a 403).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from typing_extensions import TypedDict, Unpack

from .auth import Authorize, ClerkAuth
from .config import ENV_VARS, PublishableKey
from .errors import AuthError, ConfigurationError, Forbidden, NotAuthenticated
from .machine import AcceptsToken, TokenType, accepted_kinds
from .rules import Rule, all_of, is_pure, rules_from
from .session import Reverification, Session

__all__ = [
    "CLIENT_UAT_COOKIE",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "Adapter",
    "Guard",
    "GuardKwargs",
    "GuardOptions",
    "Preflight",
    "RequireAuth",
    "TokenSource",
    "asgi_header_values",
    "auth_from_config",
    "build_require_auth",
    "client_uat_names_for",
    "cookie_names_for",
    "guard_of",
    "is_async_callable",
    "log_refusal",
    "origin_matches_host",
    "parse_cookies",
    "token_from_authorization",
    "token_from_authorization_values",
    "unguarded_views",
    "wrapped_chain",
]

logger = logging.getLogger("clerkguard.guard")

RequestT = TypeVar("RequestT")
F = TypeVar("F", bound=Callable[..., Any])
TokenSource = Literal["header", "cookie"]

#: Clerk's session cookie (set by Clerk's frontend SDKs on the app's domain).
SESSION_COOKIE = "__session"
#: Clerk's client "updated at" cookie (``SameSite=Strict``, Unix seconds; 0 = signed out).
CLIENT_UAT_COOKIE = "__client_uat"

#: Handlers a guard has wrapped, by identity (weak: never keeps a function alive), with the
#: name of the decorator that did (``require_auth``, ``require_webhook``).
#: Lets [`unguarded_views`][clerkguard.adapters.unguarded_views] spot a guard applied *above* a route
#: decorator, and the refusal name the decorator to move.
_WRAPPED: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=64)
def _cookie_suffix(pk: PublishableKey | None) -> str | None:
    if pk is None:
        return None
    # Clerk hashes the key exactly as written (its keys carry no base64
    # padding), so the key is never rebuilt from the parsed host.
    digest = base64.urlsafe_b64encode(hashlib.sha1(pk.key.encode()).digest()).decode()  # noqa: S324 - a name, not security
    return digest[:8]


def _suffixed(base: str, auth: ClerkAuth | None) -> tuple[str, ...]:
    suffix = _cookie_suffix(auth.publishable_key if auth is not None else None)
    return (base,) if suffix is None else (f"{base}_{suffix}", base)


def cookie_names_for(auth: ClerkAuth | None) -> tuple[str, ...]:
    """Session cookie names, suffixed variant first (Clerk's multi-app cookies).

    Clerk suffixes the cookie with the first 8 characters of the base64url
    SHA-1 of the publishable key, so two apps on one domain don't collide.
    """
    return _suffixed(SESSION_COOKIE, auth)


def client_uat_names_for(auth: ClerkAuth | None) -> tuple[str, ...]:
    """Clerk's ``__client_uat`` cookie names, suffixed variant first (as for ``__session``)."""
    return _suffixed(CLIENT_UAT_COOKIE, auth)


def token_from_authorization(value: str | None) -> str | None:
    """The token of one ``Bearer`` ``Authorization`` header value.

    Returns ``None`` when there is no header or it uses another scheme
    (``Basic ...``): such a header is ignored as if absent. The scheme is
    case-insensitive and may be followed by whitespace of any kind (a tab
    too) or by nothing: ``"Bearer"`` alone returns ``""`` (present but
    malformed), and it still wins over a cookie.
    """
    if not value:
        return None
    value = value.lstrip()
    if value[:6].lower() != "bearer" or (len(value) > 6 and not value[6].isspace()):
        return None
    return value[6:].strip()


# A credential starts with an auth-scheme token followed by whitespace or the end
# (RFC 9110 11.4); the auth-params of one credential (``realm="x"``) don't.
_CREDENTIAL_START = re.compile(r"\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s|$)")


def _ambiguous(detail: str) -> NotAuthenticated:
    return NotAuthenticated("token-ambiguous", detail)


def token_from_authorization_values(values: Sequence[str]) -> str | None:
    """The Bearer token of every ``Authorization`` value a request carried.

    Two credentials are refused (401 ``token-ambiguous``) however they
    arrived: two header lines, or one line that a server folded
    (``Bearer A, Bearer B``, as WSGI servers do). Frameworks disagree on
    which of two headers they'd pick, so no one is picked.
    """
    if not values:
        return None
    if len(values) == 1 and "," not in values[0]:
        return token_from_authorization(values[0])
    credentials = [piece for value in values for piece in value.split(",") if _CREDENTIAL_START.match(piece)]
    if len(credentials) > 1:
        raise _ambiguous("the request carries more than one Authorization credential")
    return token_from_authorization(credentials[0]) if credentials else None


def parse_cookies(values: Sequence[str], names: Iterable[str]) -> dict[str, str]:
    """The values of cookies ``names`` in raw ``Cookie`` header values, parsed once.

    One parser for every framework, so every adapter picks the same cookie.
    Empty values count as absent; a pair of surrounding double quotes is
    dropped (RFC 6265 ``cookie-value``). The same name with two different
    values is refused (401 ``token-ambiguous``): that is cookie tossing from
    a sibling subdomain, and frameworks disagree on which one wins.
    """
    wanted = set(names)
    found: dict[str, str] = {}
    for header in values:
        for pair in header.split(";"):
            name, sep, value = pair.partition("=")
            name = name.strip()
            if not sep or name not in wanted:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if not value:
                continue
            seen = found.setdefault(name, value)
            if seen != value:
                raise _ambiguous(f"the request carries two different {name} cookies")
    return found


#: `Guard.cached` indexes ``Authorization`` lines by their last characters (part
#: of the signature) and remembers at most this many before it starts over.
_LINE_TAIL = 32
_LINES_MAX = 4096

#: The header names the guard reads, as ASGI spells them (lower-case bytes).
_ASGI_NAMES = {
    name: name.encode("latin-1") for name in ("authorization", "cookie", "host", "origin", "sec-fetch-site")
}


def asgi_header_values(scope: Mapping[str, Any], name: str) -> list[str]:
    """Every value of header ``name`` in an ASGI ``scope``, one per header line, in order.

    For adapters of ASGI frameworks (their
    [`Adapter.header_values`][clerkguard.adapters.Adapter.header_values]): it scans the raw
    ``scope["headers"]`` pairs instead of building the framework's header mapping (a
    multidict per request). ASGI header names are lower case; ``name`` is matched
    case-insensitively.
    """
    wanted = _ASGI_NAMES.get(name) or name.lower().encode("latin-1")
    # A plain loop (no comprehension frame) and no copy of values that are
    # already bytes: this runs on every guarded request.
    found: list[str] = []
    for key, value in scope.get("headers", ()):
        if key == wanted:
            found.append((value if type(value) is bytes else bytes(value)).decode("latin-1"))
    return found


class Adapter(Generic[RequestT]):
    """Named hooks a framework integration implements; the core drives them.

    Subclass it, implement the six hooks that raise `NotImplementedError`
    ([`header`][clerkguard.adapters.Adapter.header], [`method`][clerkguard.adapters.Adapter.method],
    [`find_request`][clerkguard.adapters.Adapter.find_request], [`store`][clerkguard.adapters.Adapter.store],
    [`reject`][clerkguard.adapters.Adapter.reject],
    [`options_response`][clerkguard.adapters.Adapter.options_response]), and pass an instance to
    [`build_require_auth`][clerkguard.adapters.build_require_auth]. Override
    [`header_values`][clerkguard.adapters.Adapter.header_values] when the framework can tell repeated header
    lines apart, [`is_websocket`][clerkguard.adapters.Adapter.is_websocket] when it routes websockets through
    the same handlers, and [`auth_for`][clerkguard.adapters.Adapter.auth_for],
    [`call_sync`][clerkguard.adapters.Adapter.call_sync] and
    [`call_async`][clerkguard.adapters.Adapter.call_async] when it keeps its configuration on the app or runs
    handlers its own way.

    Args:
        auth: The default [`ClerkAuth`][clerkguard.auth.ClerkAuth] for guards built on this adapter.
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

    def header_values(self, request: RequestT, name: str) -> Sequence[str]:
        """Every value of header ``name`` (lower case), one per header line; ``[]`` when absent.

        The core reads ``authorization``, ``cookie``, ``host``, ``origin``
        and ``sec-fetch-site`` through this hook and parses them itself, so
        every framework decides alike (two ``Authorization`` headers are
        refused, cookies are parsed by one parser). The default wraps
        [`header`][clerkguard.adapters.Adapter.header]; override it where the framework keeps repeated
        header lines apart (ASGI's ``scope["headers"]``).
        """
        value = self.header(request, name)
        return () if value is None else (value,)

    def cookie(self, request: RequestT, name: str) -> str | None:
        """Value of cookie ``name``, or ``None``.

        Not used by the guard any more (it parses the raw ``Cookie`` header
        itself, see [`parse_cookies`][clerkguard.adapters.parse_cookies]); kept for integrations' own use.
        """
        values = parse_cookies(self.header_values(request, "cookie"), (name,))
        return values.get(name)

    def method(self, request: RequestT) -> str:
        """The HTTP method, upper case (``GET`` for a websocket handshake)."""
        raise NotImplementedError

    def is_websocket(self, request: RequestT) -> bool:
        """Whether ``request`` is a websocket handshake (origin-checked like an unsafe method)."""
        return False

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RequestT:
        """The request of a handler call (a global, a positional or a keyword)."""
        raise NotImplementedError

    def store(self, request: RequestT, session: Session | None) -> None:
        """Make the verified session (``None`` for an anonymous ``optional`` request) reachable."""
        raise NotImplementedError

    def reject(self, request: RequestT, error: AuthError) -> Any:
        """Return the framework's error response, or raise its exception."""
        raise NotImplementedError

    def options_response(self, request: RequestT) -> Any:
        """The framework's default answer to ``OPTIONS`` (``204`` with ``Allow``), or an awaitable of it.

        A guarded handler is never called for ``OPTIONS`` (unless
        ``allow_options=False``, which authenticates it like any method): the
        guard answers with this instead, so a CORS preflight still works and
        CORS middleware still decorates the answer.
        """
        raise NotImplementedError

    def auth_for(self, request: RequestT) -> ClerkAuth:
        """The [`ClerkAuth`][clerkguard.auth.ClerkAuth] for this request (default: `auth`)."""
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

    # -- webhooks: the hooks ``require_webhook`` needs (clerkguard._webhook_guard) -----------
    # Self-contained: the guard above never calls them. A framework that only
    # wants ``require_auth`` can leave them unimplemented.
    def body(self, request: RequestT, limit: int) -> bytes:
        """The raw request body, unparsed, from sync code.

        ``limit`` is the webhook size limit: an implementation may stop reading
        after ``limit + 1`` bytes (or raise ``WebhookError("body-too-large")``);
        the caller refuses anything longer than ``limit`` either way.
        """
        raise NotImplementedError("this adapter does not implement body(): no require_webhook")

    async def abody(self, request: RequestT, limit: int) -> bytes:
        """The raw request body from async code (default: [`body`][clerkguard.adapters.Adapter.body])."""
        return self.body(request, limit)

    def json_response(self, request: RequestT, status: int, content: Mapping[str, Any]) -> Any:
        """A JSON response with ``status`` (webhook acknowledgements without the handler)."""
        raise NotImplementedError("this adapter does not implement json_response(): no require_webhook")

    def webhook_secret(self, request: RequestT) -> str | None:
        """The app's ``CLERK_WEBHOOK_SIGNING_SECRET`` setting, if the framework has settings.

        ``None`` (the default) falls back to the environment variable; a
        ``secret=`` given to the decorator wins over both.
        """
        return None

    def store_webhook(self, request: RequestT, event: Any) -> None:
        """Make the verified `WebhookEvent` reachable to the handler."""
        raise NotImplementedError("this adapter does not implement store_webhook(): no require_webhook")


class GuardKwargs(TypedDict, total=False):
    """The keyword options of every ``require_auth(...)`` / ``requires_auth(...)``.

    One definition for every framework module: each spells its decorator
    ``require_auth(**options: Unpack[GuardKwargs])``, so IDEs and
    ``mypy --strict`` see the real names and types.
    """

    authorize: Authorize | None
    """``authorize(session, request)``, sync or async; exactly ``True`` allows."""
    optional: bool
    """A request without a token reaches the handler with no session."""
    auth: ClerkAuth | None
    """A specific [`ClerkAuth`][clerkguard.auth.ClerkAuth] for this guard."""
    token_sources: Sequence[TokenSource]
    """Where to look, in order: ``"header"``, ``"cookie"``."""
    allow_options: bool
    """Answer ``OPTIONS`` with the framework's default response, without the handler."""
    cookie_names: Iterable[str] | None
    """Session cookie names (default: Clerk's ``__session`` and its suffixed variant)."""
    check_client_uat: bool
    """Clerk's ``__client_uat`` rule for cookie tokens (default on)."""
    check_origin: bool
    """The Origin / ``Sec-Fetch-Site`` check for cookie tokens on unsafe requests (default on)."""
    trusted_origins: Iterable[str]
    """Origins allowed to send cookie-authenticated unsafe requests, besides ``authorized_parties``."""
    role: str | None
    """Shorthand rule: the active organization role (``"admin"`` = ``"org:admin"``)."""
    permission: str | None
    """Shorthand rule: an organization permission (``"org:invoices:read"``)."""
    feature: str | None
    """Shorthand rule: a Billing feature."""
    plan: str | None
    """Shorthand rule: a Billing plan."""
    reverification: str | Reverification | None
    """Shorthand rule: a recent reverification (``"strict"``, ``Reverification(...)``)."""
    org: str | None
    """Shorthand rule: the active organization id."""
    scope: str | None
    """Shorthand rule: a scope granted to a machine credential (``"orders:read"``;
    sessions have none)."""
    accepts_token: AcceptsToken
    """Credential kinds accepted: ``"session_token"`` (default), ``"m2m_token"``,
    ``"oauth_token"``, ``"api_key"``, a list, or ``"any"``. Machine kinds are
    read from the ``Authorization: Bearer`` header only."""


@dataclass(frozen=True)
class GuardOptions:
    """What one ``require_auth(...)`` asks for."""

    authorize: Authorize | None = None
    """``authorize(session, request)``, sync or async; exactly ``True`` allows.
    Wins over the [`ClerkAuth`][clerkguard.auth.ClerkAuth]'s default ``authorize``."""
    optional: bool = False
    """A request without a token reaches the handler with no session (a token
    that is present must still be valid)."""
    token_sources: tuple[TokenSource, ...] = ("header", "cookie")
    """Where to look, in order: ``"header"`` (``Authorization: Bearer``), ``"cookie"``."""
    allow_options: bool = True
    """Answer ``OPTIONS`` (CORS preflight) with the framework's default
    response, never calling the handler. ``False``: authenticate ``OPTIONS``
    like any other method."""
    auth: ClerkAuth | None = None
    """A specific [`ClerkAuth`][clerkguard.auth.ClerkAuth] for this guard (apps with several Clerk
    instances)."""
    cookie_names: tuple[str, ...] | None = None
    """Session cookie names (default: Clerk's ``__session`` and its suffixed variant)."""
    rules: tuple[Rule, ...] = field(default=())
    """Rules that must all hold before ``authorize`` runs (from ``role=``, ``permission=``...)."""
    check_client_uat: bool = True
    """A cookie token counts only with Clerk's ``__client_uat`` cookie present,
    non-zero and not newer than the token's ``iat`` (Clerk's own rule)."""
    check_origin: bool = True
    """Cookie tokens on unsafe methods and websocket handshakes need a
    same-origin or trusted ``Origin`` (or ``Sec-Fetch-Site: same-origin/none``)."""
    trusted_origins: tuple[str, ...] = ()
    """Extra origins trusted by the origin check (``authorized_parties`` always are)."""
    accepts_token: frozenset[TokenType] = frozenset({"session_token"})
    """Credential kinds accepted (normalised ``accepts_token``); machine kinds
    only from the ``Authorization: Bearer`` header, never from the cookie."""


class Preflight(Exception):
    """Raised by [`Guard.check`][clerkguard.adapters.Guard.check] /
    [`Guard.acheck`][clerkguard.adapters.Guard.acheck] for an ``OPTIONS`` request.

    The guard lets the framework answer it
    ([`Adapter.options_response`][clerkguard.adapters.Adapter.options_response]) and the handler is not
    called. Deliberately not an [`AuthError`][clerkguard.errors.AuthError]: an integration that forgot to
    handle it fails closed (an error), it never runs the handler without a session.
    """


#: Methods that a cookie may authenticate from another origin (RFC 9110 safe methods).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _one(values: Sequence[str]) -> str | None:
    return values[0].strip() if len(values) == 1 else None


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit("//" + netloc)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, -1)


def origin_matches_host(origin: str, host: str | None) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) names the request's own ``Host``.

    The scheme is not compared (behind a TLS-terminating proxy the app
    cannot know it); default ports are, so ``https://a.com`` matches
    ``Host: a.com`` and ``a.com:443``.
    """
    if not host:
        return False
    scheme, sep, netloc = origin.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        return False
    mine = _host_port(netloc, scheme)
    return mine is not None and mine == _host_port(host.strip(), scheme)


class Guard(Generic[RequestT]):
    """One configured check: token extraction, verification, cookie rules, authorization.

    [`check`][clerkguard.adapters.Guard.check] (sync) and [`acheck`][clerkguard.adapters.Guard.acheck] (async)
    make the same decision; they differ only in how a JWKS fetch or an async ``authorize`` is awaited. Both
    return the session, ``None`` when an ``optional`` request carries no token, raise
    [`Preflight`][clerkguard.adapters.Preflight] for an ``OPTIONS`` request the framework should answer
    itself, or raise [`AuthError`][clerkguard.errors.AuthError].
    """

    __slots__ = ("_cookie_accepts", "_quick", "_rule", "_sources", "adapter", "options")

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
        for origin in options.trusted_origins:
            if not isinstance(origin, str) or "://" not in origin:
                raise ConfigurationError("trusted_origins must be origins such as 'https://app.example.com'")
        accepts = accepted_kinds(options.accepts_token)
        # Machine credentials come from the Bearer header only (as Clerk reads
        # them): a route that takes no session token never looks at the cookie.
        self._cookie_accepts: frozenset[TokenType] = accepts & {"session_token"}
        self._sources = tuple(s for s in options.token_sources if s != "cookie" or self._cookie_accepts)
        if not self._sources:
            raise ConfigurationError(
                "token_sources: machine credentials are read from the 'header' source only"
            )
        rules = options.rules
        self._rule: Rule | None = (rules[0] if len(rules) == 1 else all_of(*rules)) if rules else None
        # Whether `cached` may decide: the header comes first and a verified token plus,
        # at most, built-in rules (pure: evaluated inline) is the whole decision (no
        # authorize of this guard's own).
        self._quick = (
            self._sources[0] == "header"
            and (self._rule is None or is_pure(self._rule))
            and options.authorize is None
        )

    # -- the common request, at once -------------------------------------------
    def cached(self, request: RequestT) -> Session | None:
        """The session of a request decided at once from the verified-token cache, else ``None``.

        The common API request (not ``OPTIONS``, one ``Authorization: Bearer``
        header, a token this [`ClerkAuth`][clerkguard.auth.ClerkAuth] verified before and still
        valid, no ``authorize`` and only built-in rules, see
        [`is_pure`][clerkguard.rules.is_pure]) needs no I/O and no await: the
        wrappers try this first and call [`check`][clerkguard.adapters.Guard.check] /
        [`acheck`][clerkguard.adapters.Guard.acheck] on ``None`` (which decide everything
        again: this is only a shortcut). Whenever this returns a session,
        ``check``/``acheck`` would return the same one; anything else (including every
        refusal) is left to them. Never raises an [`AuthError`][clerkguard.errors.AuthError].
        """
        if not self._quick:
            return None
        adapter = self.adapter
        values = adapter.header_values(request, "authorization")
        if len(values) != 1:
            return None
        value = values[0]
        options = self.options
        auth = options.auth or adapter.auth_for(request)
        if auth.authorize is not None or adapter.method(request) == "OPTIONS":
            return None
        # A line that carried a verified token before (same tail, then compared in
        # full) names its token without slicing and hashing the ~1 KB line again.
        lines = auth._bearer_lines
        tail = value[-_LINE_TAIL:]
        seen = lines.get(tail)
        if seen is not None and seen[0] == value:
            token = seen[1]
        elif value.startswith("Bearer ") and "," not in value:
            token = value[7:].strip()
            seen = None
        else:
            return None
        try:
            found = auth._cached(token, options.accepts_token)
        except AuthError:  # a kind this guard does not accept: check/acheck refuse (and log) it
            return None
        if found is None or not auth._settled(found):
            return None  # not verified before, or the organization restriction needs a lookup
        rule = self._rule
        if rule is not None:
            try:
                allowed = rule(found, request)  # type: ignore[arg-type]
            except Exception:  # the full path turns it into its 403 (fail closed)
                return None
            if allowed is not True:
                return None  # denied: the full path decides again and answers the 403
        if seen is None:
            if len(lines) >= _LINES_MAX:
                lines.clear()
            lines[tail] = (value, token)
        # A route with accepts_token= machine kinds hands over a MachineCredential
        # (same has()/token_type surface); framework surfaces are still typed Session.
        return found  # type: ignore[return-value]

    # -- pieces ------------------------------------------------------------------
    def auth(self, request: RequestT) -> ClerkAuth:
        """The ClerkAuth this guard uses for ``request``."""
        return self.options.auth or self.adapter.auth_for(request)

    def credential(self, request: RequestT, auth: ClerkAuth) -> tuple[str, TokenSource] | None:
        """The token of ``request`` and where it came from: a Bearer header wins, then the cookie.

        ``None`` means no token at all; a token ``""`` a Bearer header without
        credentials. Raises [`AuthError`][clerkguard.errors.AuthError] (``token-ambiguous``) for two
        Authorization credentials or two different session cookies.
        """
        for source in self._sources:
            if source == "header":
                token = token_from_authorization_values(self.adapter.header_values(request, "authorization"))
                if token is not None:
                    return token, "header"
            else:
                names = self.options.cookie_names or cookie_names_for(auth)
                cookies = parse_cookies(self.adapter.header_values(request, "cookie"), names)
                for name in names:
                    value = cookies.get(name)
                    if value is not None:
                        return value, "cookie"
        return None

    def token(self, request: RequestT, auth: ClerkAuth) -> str | None:
        """The token of ``request`` (see [`credential`][clerkguard.adapters.Guard.credential]), without its
        source."""
        found = self.credential(request, auth)
        return None if found is None else found[0]

    def _start(self, request: RequestT) -> tuple[ClerkAuth, str, TokenSource, int] | None:
        """Everything before verification; ``None`` = an anonymous ``optional`` request."""
        options = self.options
        adapter = self.adapter
        if options.allow_options and adapter.method(request) == "OPTIONS":
            raise Preflight
        auth = options.auth or adapter.auth_for(request)
        if self._sources[0] == "header":
            # The common API request, decided inline: one Authorization line,
            # "Bearer <token>", nothing folded into it. Everything else takes
            # the general path below, which gives this case the same answer.
            values = adapter.header_values(request, "authorization")
            if len(values) == 1:
                value = values[0]
                if value[:7] == "Bearer " and "," not in value:
                    token = value[7:].strip()
                    if token:
                        return auth, token, "header", 0
        found = self.credential(request, auth)
        if found is None:
            if self.options.optional:
                return None
            raise self._missing(request)
        token, source = found
        if not token:
            # "Authorization: Bearer" with nothing after it was sent: a bad
            # token, not an absent one (and it still wins over the cookie).
            raise NotAuthenticated("token-malformed", "the Bearer credentials are empty")
        uat = 0
        if source == "cookie" and self.options.check_client_uat:
            uat = self._client_uat(request, auth)  # signed out: refuse before any crypto
        return auth, token, source, uat

    def _missing(self, request: RequestT) -> NotAuthenticated:
        if "header" in self._sources and self.adapter.header_values(request, "authorization"):
            detail = (
                "an Authorization header was sent without the Bearer scheme (it is ignored); "
                "send 'Authorization: Bearer <session token>'"
            )
        else:
            detail = "no session token was provided"
        return NotAuthenticated("token-missing", detail, token_present=False)

    def _client_uat(self, request: RequestT, auth: ClerkAuth) -> int:
        """Clerk's ``__client_uat`` (suffixed first); 401 when absent, zero or unparsable."""
        names = client_uat_names_for(auth)
        cookies = parse_cookies(self.adapter.header_values(request, "cookie"), names)
        raw = next((cookies[name] for name in names if name in cookies), "")
        uat = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 12 else 0
        if uat <= 0:
            raise NotAuthenticated(
                "session-token-without-client-uat",
                "a session cookie without Clerk's __client_uat cookie (signed out): "
                "the frontend SDK refreshes the session",
            )
        return uat

    def _cookie_rules(self, request: RequestT, auth: ClerkAuth, session: Session, uat: int) -> None:
        """What a verified cookie token must also pass (tokens from headers skip this)."""
        options = self.options
        if options.check_client_uat and session.issued_at < uat:
            raise NotAuthenticated(
                "session-token-iat-before-client-uat",
                "the session cookie predates the client's last sign-in change: "
                "the frontend SDK refreshes the session",
            )
        if options.check_origin and not self._same_origin(request, auth):
            raise Forbidden(
                "cross-site-request",
                "a cookie-authenticated unsafe request from another origin "
                "(send the token as a Bearer header, or trust the origin)",
            )

    def _same_origin(self, request: RequestT, auth: ClerkAuth) -> bool:
        adapter = self.adapter
        if adapter.method(request) in SAFE_METHODS and not adapter.is_websocket(request):
            return True
        fetch_site_values = adapter.header_values(request, "sec-fetch-site")
        fetch_site = _one(fetch_site_values)
        if fetch_site is not None and fetch_site.lower() in ("same-origin", "none"):
            return True
        origins = adapter.header_values(request, "origin")
        if not origins and not fetch_site_values:
            return True  # neither header: not a browser, so not a forged browser request
        origin = _one(origins)
        if origin is None:
            return False
        trusted = {
            o.rstrip("/").lower() for o in (*self.options.trusted_origins, *(auth.authorized_parties or ()))
        }
        if origin.rstrip("/").lower() in trusted:
            return True
        return origin_matches_host(origin, _one(adapter.header_values(request, "host")))

    def _unconditional(self, auth: ClerkAuth) -> bool:
        """No rule and no ``authorize`` to run: a verified session is the whole decision."""
        return self._rule is None and self.options.authorize is None and auth.authorize is None

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
        token: str | None = None
        source: TokenSource | None = None
        try:
            started = self._start(request)
            if started is None:
                return None
            auth, token, source, uat = started
            accepts = self._cookie_accepts if source == "cookie" else self.options.accepts_token
            session = auth.verify(token, accepts_token=accepts)
            if source == "cookie":
                if not isinstance(session, Session):  # cookies carry session tokens only
                    raise NotAuthenticated("token-type-not-accepted", "a cookie holds session tokens only")
                self._cookie_rules(request, auth, session, uat)
            if self._unconditional(auth):
                return session  # type: ignore[return-value]  # see the final return
            for callback, what in self._callbacks(auth):
                result: object = None
                try:
                    # A MachineCredential has the same has()/token_type surface.
                    result = callback(session, request)  # type: ignore[arg-type]
                    if result is not True and inspect.isawaitable(result):
                        result = self.adapter.await_sync(result)
                except AuthError:
                    raise
                except Exception as exc:
                    if inspect.iscoroutine(result):
                        result.close()  # never started (the bridge refused): no "never awaited" leak
                    raise self._failed(exc) from None
                self._denied(result, what)
            # A route with accepts_token= machine kinds hands over a MachineCredential
            # (same has()/token_type surface): Session-typed surfaces hold it, Credential-typed twins name it.
            return session  # type: ignore[return-value]
        except AuthError as error:
            if logger.isEnabledFor(logging.DEBUG):
                log_refusal(error, token, source)
            raise

    async def acheck(self, request: RequestT) -> Session | None:
        """Decide from async code (a sync ``authorize`` is called inline: keep it cheap)."""
        token: str | None = None
        source: TokenSource | None = None
        try:
            started = self._start(request)
            if started is None:
                return None
            auth, token, source, uat = started
            accepts = self._cookie_accepts if source == "cookie" else self.options.accepts_token
            # A repeated token straight from the verified-token cache (what averify does
            # first), without creating and awaiting a coroutine.
            session = auth._cached(token, accepts)
            if session is None or not auth._settled(session):
                session = await auth.averify(token, accepts_token=accepts)
            if source == "cookie":
                if not isinstance(session, Session):  # cookies carry session tokens only
                    raise NotAuthenticated("token-type-not-accepted", "a cookie holds session tokens only")
                self._cookie_rules(request, auth, session, uat)
            if self._unconditional(auth):
                return session  # type: ignore[return-value]  # see the final return
            for callback, what in self._callbacks(auth):
                try:
                    # A MachineCredential has the same has()/token_type surface.
                    result = callback(session, request)  # type: ignore[arg-type]
                    if result is not True and inspect.isawaitable(result):
                        result = await result
                except AuthError:
                    raise
                except Exception as exc:
                    raise self._failed(exc) from None
                self._denied(result, what)
            # A route with accepts_token= machine kinds hands over a MachineCredential
            # (same has()/token_type surface): Session-typed surfaces hold it, Credential-typed twins name it.
            return session  # type: ignore[return-value]
        except AuthError as error:
            if logger.isEnabledFor(logging.DEBUG):
                log_refusal(error, token, source)
            raise


def _peek(token: str | None) -> dict[str, object]:
    """Safe, unverified facts of a refused token for a DEBUG line: never the token or its signature."""
    facts: dict[str, object] = {}
    if not token or len(token) > 8192 or token.count(".") != 2:
        return facts
    header_b64, payload_b64, _ = token.split(".")
    for segment, keys in ((header_b64, ("kid", "alg")), (payload_b64, ("iss", "azp", "exp", "iat"))):
        try:
            data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except Exception:  # noqa: S112 - a refused token may hold anything; facts are best effort
            continue
        if not isinstance(data, dict):
            continue
        for key in keys:
            value = data.get(key)
            if isinstance(value, str):
                facts[key] = value[:120]
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                facts[key] = value
    return facts


def log_refusal(error: AuthError, token: str | None, source: str | None) -> None:
    """The opt-in DEBUG line for one refusal on the ``clerkguard.guard`` logger.

    The reason and safe facts only (token source, ``iss``, ``azp``, ``kid``,
    ``alg``, ``exp``, ``iat``, read unverified and quoted with ``repr``);
    never the token, a signature or a secret.
    """
    facts = " ".join(f"{key}={value!r}" for key, value in _peek(token).items())
    logger.debug(
        "refused %s %s: source=%s %s",
        error.status,
        error.reason,
        source or "none",
        facts or "(no token facts)",
    )


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


#: Every option ``require_auth(...)`` takes (the keys of [`GuardKwargs`][clerkguard.adapters.GuardKwargs]).
_OPTION_NAMES = frozenset(GuardKwargs.__annotations__)
#: Options that belong to endpoints, refused by the integrations that authenticate every
#: request and refuse none (Starlette's ``ClerkAuthBackend``, Django's middleware): they
#: never turn away an anonymous request nor apply rules, and they authenticate every method.
_ENDPOINT_ONLY = frozenset(
    {
        "optional",
        "allow_options",
        "authorize",
        "role",
        "permission",
        "feature",
        "plan",
        "reverification",
        "org",
        "scope",
    }
)


def _options(**options: Unpack[GuardKwargs]) -> GuardOptions:
    token_sources = options.get("token_sources", ("header", "cookie"))
    cookie_names = options.get("cookie_names")
    trusted_origins = options.get("trusted_origins", ())
    auth = options.get("auth")
    for name, value in (("token_sources", token_sources), ("trusted_origins", trusted_origins)):
        if isinstance(value, str):
            raise ConfigurationError(f"{name} must be a sequence, not one string")
    if isinstance(cookie_names, str):
        raise ConfigurationError("cookie_names must be a sequence of names, not one string")
    if auth is not None and not isinstance(auth, ClerkAuth):
        raise ConfigurationError("auth must be a clerkguard.ClerkAuth")
    return GuardOptions(
        authorize=options.get("authorize"),
        optional=options.get("optional", False),
        token_sources=tuple(token_sources),
        allow_options=options.get("allow_options", True),
        auth=auth,
        cookie_names=tuple(cookie_names) if cookie_names is not None else None,
        check_client_uat=options.get("check_client_uat", True),
        check_origin=options.get("check_origin", True),
        trusted_origins=tuple(trusted_origins),
        accepts_token=accepted_kinds(options.get("accepts_token", "session_token")),
        rules=tuple(
            rules_from(
                role=options.get("role"),
                permission=options.get("permission"),
                feature=options.get("feature"),
                plan=options.get("plan"),
                reverification=options.get("reverification"),
                org=options.get("org"),
                scope=options.get("scope"),
            )
        ),
    )


class RequireAuth:
    """The ``require_auth`` decorator an adapter module exports.

    Usable bare (``@require_auth``) or configured (``@require_auth(...)``)
    with the options of [`GuardKwargs`][clerkguard.adapters.GuardKwargs] (the rule shorthands ``role``,
    ``permission``, ``feature``, ``plan``, ``reverification``, ``org``, ``scope`` must
    all hold, plus ``authorize``). Options are checked when the decorator is
    applied, not at the first request.
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
    def __call__(self, handler: None = None, /, **options: Unpack[GuardKwargs]) -> Callable[[F], F]: ...

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

    def guard(self, **options: Unpack[GuardKwargs]) -> Guard[Any]:
        """A [`Guard`][clerkguard.adapters.Guard] with these options, for frameworks' native hooks.

        Takes the same keywords as ``require_auth(...)``; used e.g. by
        ``clerkguard.flask.guard_blueprint`` in a ``before_request`` hook.
        """
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise TypeError(f"require_auth() got unknown option(s): {', '.join(unknown)}")
        return Guard(self.adapter, _options(**options))


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine: an ``async def``, a partial of one,
    or an object whose ``__call__`` is ``async def``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def wrapped_chain(handler: Any, limit: int = 100) -> list[Any]:
    """``handler`` and everything behind its ``__wrapped__`` links (bounded: cycles end)."""
    chain: list[Any] = []
    fn: Any = handler
    while fn is not None and len(chain) < limit:
        chain.append(fn)
        fn = getattr(fn, "__wrapped__", None)
    return chain


def _remember(handler: Callable[..., Any], decorator: str = "require_auth") -> None:
    # The whole __wrapped__ chain: with another functools.wraps decorator between
    # the guard and the route decorator, the route registered the innermost function.
    for fn in wrapped_chain(handler):
        try:
            _WRAPPED[fn] = decorator
        except TypeError:  # not weak-referenceable (a builtin): nothing to track
            pass


async def _maybe_await(result: Any) -> Any:
    return (await result) if inspect.isawaitable(result) else result


def _wrap_handler(handler: Callable[..., Any], guard: Guard[Any]) -> Callable[..., Any]:
    """The default wrapper: same sync/async kind as the handler, metadata kept.

    ``functools.wraps`` copies name, docstring, module and ``__wrapped__``, so
    ``inspect.signature(wrapper)`` is the handler's signature.
    """
    adapter = guard.adapter
    _remember(handler)
    if not adapter.sync_only and (adapter.async_only or is_async_callable(handler)):

        @functools.wraps(handler)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            request = adapter.find_request(args, kwargs)
            try:
                session = guard.cached(request)  # the common request, without awaiting
                if session is None:
                    session = await guard.acheck(request)
            except AuthError as error:
                return adapter.reject(request, error)
            except Preflight:
                return await _maybe_await(adapter.options_response(request))
            adapter.store(request, session)
            return await adapter.call_async(handler, args, kwargs)

        async_wrapper.__clerkguard__ = guard  # type: ignore[attr-defined]
        return async_wrapper

    @functools.wraps(handler)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
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
        return adapter.call_sync(handler, args, kwargs)

    sync_wrapper.__clerkguard__ = guard  # type: ignore[attr-defined]
    return sync_wrapper


def guard_of(handler: Callable[..., Any]) -> Guard[Any] | None:
    """The outermost [`Guard`][clerkguard.adapters.Guard] on ``handler`` (following ``__wrapped__``), or
    ``None``."""
    for fn in wrapped_chain(handler):
        guard = getattr(fn, "__clerkguard__", None)
        if isinstance(guard, Guard):
            return guard
    return None


def unguarded_views(view_functions: Mapping[str, Callable[..., Any]]) -> list[str]:
    """Endpoints registered with a handler that ``require_auth`` wrapped *afterwards*.

    The classic silent bypass: with the guard above the route decorator:

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


def _decorator_of(view: object) -> str:
    """The clerkguard decorator that wrapped ``view`` after its route registered it."""
    try:
        return _WRAPPED.get(view) or "require_auth"
    except TypeError:  # not weak-referenceable (None, a builtin)
        return "require_auth"


def _misordered_message(found: Mapping[str, str], preposition: str = "for") -> tuple[str, str]:
    """``(what, fix)`` for endpoints whose guard sits above the route decorator.

    ``found`` maps each endpoint to the decorator that is misplaced there
    (``require_auth`` or ``require_webhook``): ``what`` names each decorator
    with its endpoints, ``fix`` the decorators to move (``@require_webhook``).
    """
    groups: dict[str, list[str]] = {}
    for endpoint in sorted(found):
        groups.setdefault(found[endpoint], []).append(endpoint)
    what = "; ".join(
        f"{name} is above the route decorator {preposition} {', '.join(endpoints)}"
        for name, endpoints in sorted(groups.items())
    )
    return what, " and ".join(f"@{name}" for name in sorted(groups))


def _misordered_views(views: Mapping[str, Any], endpoints: Iterable[str | None]) -> dict[str, str]:
    """``endpoint -> misplaced decorator`` for these endpoints of ``views``."""
    return {e: _decorator_of(views.get(e)) for e in endpoints if e}


def auth_from_config(config: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ClerkAuth:
    """A [`ClerkAuth`][clerkguard.auth.ClerkAuth] from an app's ``CLERK_*`` settings, then the environment.

    ``config`` is a framework's configuration mapping (Flask/Quart/Sanic
    ``app.config``); each ``CLERK_*`` variable of [`clerkguard.config.ENV_VARS`][clerkguard.config.ENV_VARS]
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
