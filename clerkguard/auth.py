"""`ClerkAuth`: configuration plus verification of Clerk session tokens."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, overload

from typing_extensions import Self

from ._backend import MAX_OPAQUE_TOKEN, BackendAPI
from ._cache import BoundedCache, charge
from ._core.jwks import Decision, JWKSPolicy, Step
from ._core.keys import key_from_pem
from ._core.token import (
    HEADER_M2M,
    HEADER_NEUTRAL,
    HEADER_OAUTH,
    M2M_SUBJECT_PREFIX,
    ClaimPolicy,
    HeaderCache,
    ParsedToken,
    check_claims,
    check_machine_claims,
    decode_payload,
    parse_token,
    verify_signature,
)
from ._keyring import JWKSStats, Keyring
from ._users import OrganizationRule, UserDirectory, mismatch, valid_user_id
from .config import (
    DEFAULT_API_URL,
    ENV_VARS,
    config_error,
    default_env,
    env_value,
    parse_publishable_key,
    parties,
    safe_url,
    seconds,
    validate_url,
)
from .errors import ConfigurationError, KeysUnavailable, NotAuthenticated
from .machine import (
    M2M_TOKEN,
    OAUTH_TOKEN,
    OPAQUE_PREFIXES,
    SESSION_TOKEN,
    AcceptsToken,
    Credential,
    MachineCredential,
    TokenType,
    accepted_kinds,
)
from .session import Session
from .users import User

__all__ = ["Authorize", "ClerkAuth"]

#: ``authorize(session, request)``: return exactly ``True`` to allow (sync or async).
Authorize = Callable[[Session, Any], "bool | Awaitable[bool]"]

_SESSION_ONLY = accepted_kinds(SESSION_TOKEN)
_OPAQUE = tuple(OPAQUE_PREFIXES)


def _not_accepted(kind: str) -> NotAuthenticated:
    return NotAuthenticated("token-type-not-accepted", f"a token of kind {kind} is not accepted here")


def _opaque_kind(token: str) -> TokenType | None:
    if not token.startswith(_OPAQUE):
        return None
    for prefix, kind in OPAQUE_PREFIXES.items():
        if token.startswith(prefix):
            return kind  # type: ignore[return-value]
    return None  # unreachable: one of the prefixes matched


def _check_opaque(token: str) -> None:
    # Checked before any request: nothing odd ever reaches the Backend API.
    if len(token) > MAX_OPAQUE_TOKEN:
        raise NotAuthenticated("token-too-large", f"the token is longer than {MAX_OPAQUE_TOKEN} characters")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise NotAuthenticated("token-malformed", "the token holds characters no Clerk token has")


class ClerkAuth:
    """Verifies Clerk session tokens for one Clerk instance.

    Every option defaults from its ``CLERK_*`` environment variable (see
    [`clerkguard.config.ENV_VARS`][clerkguard.config.ENV_VARS]); bad configuration raises
    [`ConfigurationError`][clerkguard.ConfigurationError] here, not at the first request.

    Args:
        publishable_key: ``pk_test_...``/``pk_live_...``; derives ``issuer`` and
            the Frontend API JWKS URL.
        secret_key: ``sk_...``; fetches keys from ``{api_url}/v1/jwks``.
        jwks_uri: Explicit JWKS URL; wins over derived ones.
        jwt_key: The PEM public key from the Clerk dashboard: no requests at all.
        api_url: Backend API base URL.
        issuer: Exact ``iss`` to require (default: derived from the publishable key).
        authorized_parties: Allowed ``azp`` origins; ``None`` skips the check.
        clock_skew: Leeway in seconds for ``exp``/``nbf``/``iat`` (0 to 300).
        jwks_ttl: Seconds keys are fresh; refreshed in the background before.
        jwks_cooldown: Minimum seconds between refetches caused by tokens
            (unknown ``kid`` or a bad signature).
        jwks_max_stale: Seconds past ``jwks_ttl`` that keys keep serving while
            refreshes fail.
        http_timeout: Bound on one whole JWKS fetch, and on any wait for one.
        name: Provider name (shown in logs and docs of multi-instance apps).
        authorize: Default ``authorize(session, request)`` for every guard.
        clock: ``() -> Unix seconds`` for claim times; default ``time.time``.
        allow_pending_sessions: Accept ``sts: "pending"`` sessions.
        token_cache_size: Verified tokens remembered (0 disables the cache).
        token_cache_bytes: Memory budget of that cache in bytes (default
            64 MiB; see the worst case in docs/keys-and-outages.md).
        machine_secret_key: A machine's secret key (``ak_...``): verifies
            opaque M2M tokens through the Backend API instead of ``secret_key``.
        machine_cache_ttl: Longest reuse (seconds) of a Backend API answer
            that an opaque machine token is valid (never past its expiry).
        machine_negative_cache_ttl: Reuse (seconds) of an answer that an
            opaque token is unknown, revoked or expired.
        machine_cache_size: Backend API answers remembered (0: none).
        backend_api_rate: Backend API calls per second for opaque tokens that
            are not cached (bursts of twice that); beyond it: 503.
        organization_id: Every credential must belong to this organization
            (``org_...``): the session's active organization, else the user's
            memberships (Backend API; needs ``secret_key``). Not a member: 403
            ``organization-mismatch``. See docs/machine-tokens.md.
        organization_slug: The same restriction by the organization's slug;
            only one of the two may be set.
        user_cache_ttl: Seconds a Backend API answer about a user (the user
            object of `user`, a membership verdict) is reused.
        user_cache_size: Users remembered (0: none).
        transport: An ``httpx`` transport for JWKS requests (tests:
            [`clerkguard.testing.LocalIssuer.mock_transport`][clerkguard.testing.LocalIssuer.mock_transport]).
        env: Where defaults are read from (default ``os.environ``).
    """

    def __init__(
        self,
        publishable_key: str | None = None,
        secret_key: str | None = None,
        jwks_uri: str | None = None,
        jwt_key: str | None = None,
        api_url: str | None = None,
        issuer: str | None = None,
        authorized_parties: Iterable[str] | str | None = None,
        clock_skew: float = 5.0,
        jwks_ttl: float = 300.0,
        jwks_cooldown: float = 30.0,
        http_timeout: float = 5.0,
        name: str = "clerk",
        authorize: Authorize | None = None,
        clock: Callable[[], float] | None = None,
        *,
        jwks_max_stale: float = 86400.0,
        allow_pending_sessions: bool = False,
        token_cache_size: int = 10_000,
        token_cache_bytes: int = 64 * 2**20,
        machine_secret_key: str | None = None,
        machine_cache_ttl: float = 60.0,
        machine_negative_cache_ttl: float = 10.0,
        machine_cache_size: int = 10_000,
        backend_api_rate: float = 20.0,
        organization_id: str | None = None,
        organization_slug: str | None = None,
        user_cache_ttl: float = 60.0,
        user_cache_size: int = 10_000,
        transport: Any = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = default_env() if env is None else env
        pk_text = env_value("publishable_key", publishable_key, env)
        sk = env_value("secret_key", secret_key, env)
        uri = env_value("jwks_uri", jwks_uri, env)
        pem = env_value("jwt_key", jwt_key, env)
        api = env_value("api_url", api_url, env)
        # Only an unset value means the default; an explicit blank URL is an error (as for jwks_uri).
        api = DEFAULT_API_URL if api is None else api
        iss = env_value("issuer", issuer, env)
        machine_sk = env_value("machine_secret_key", machine_secret_key, env)
        org_id = env_value("organization_id", organization_id, env)
        org_slug = env_value("organization_slug", organization_slug, env)

        pk = parse_publishable_key(pk_text) if pk_text else None
        if sk is not None and (not sk.startswith("sk_") or len(sk) < 8 or not sk.isprintable()):
            raise config_error("secret_key", "must be a Clerk secret key starting with sk_")
        if machine_sk is not None and (
            len(machine_sk) < 8 or not machine_sk.isprintable() or " " in machine_sk
        ):
            raise config_error("machine_secret_key", "must be a Clerk machine secret key (ak_...)")
        if (
            isinstance(machine_cache_size, bool)
            or not isinstance(machine_cache_size, int)
            or machine_cache_size < 0
        ):
            raise config_error("machine_cache_size", "must be a non-negative integer")
        if isinstance(user_cache_size, bool) or not isinstance(user_cache_size, int) or user_cache_size < 0:
            raise config_error("user_cache_size", "must be a non-negative integer")
        org_rule = _organization_rule(org_id, org_slug, sk)
        if not isinstance(name, str) or not name:
            raise config_error("name", "must be a non-empty string")
        if authorize is not None and not callable(authorize):
            raise config_error("authorize", "must be callable as authorize(session, request)")
        if clock is not None and not callable(clock):
            raise config_error("clock", "must be a callable returning Unix seconds")
        if (
            isinstance(token_cache_size, bool)
            or not isinstance(token_cache_size, int)
            or token_cache_size < 0
        ):
            raise config_error("token_cache_size", "must be a non-negative integer")
        if (
            isinstance(token_cache_bytes, bool)
            or not isinstance(token_cache_bytes, int)
            or token_cache_bytes < 0
        ):
            raise config_error("token_cache_bytes", "must be a non-negative integer (bytes)")

        self.name = name
        self.authorize = authorize
        self.publishable_key = pk
        self.clock: Callable[[], float] = clock or time.time
        self.clock_skew = seconds("clock_skew", clock_skew, low=0, high=300)
        policy = JWKSPolicy(
            ttl=seconds("jwks_ttl", jwks_ttl, low=1, high=7 * 86400),
            cooldown=seconds("jwks_cooldown", jwks_cooldown, low=0, high=86400),
            max_stale=seconds("jwks_max_stale", jwks_max_stale, low=0, high=30 * 86400),
            http_timeout=seconds("http_timeout", http_timeout, low=0.01, high=120),
        )

        static_key = None
        headers: dict[str, str] = {}
        if pem is not None:
            try:
                static_key = key_from_pem(pem)
            except ValueError as exc:
                raise config_error("jwt_key", str(exc)) from None
            resolved_uri = None
        elif uri is not None:
            resolved_uri = validate_url("jwks_uri", uri)
        elif sk is not None:
            base = validate_url("api_url", api).rstrip("/")
            resolved_uri = f"{base}/v1/jwks"
            headers["Authorization"] = f"Bearer {sk}"
        elif pk is not None:
            resolved_uri = pk.jwks_uri
        else:
            raise _no_key_source()
        self.jwks_uri: str | None = resolved_uri
        """The JWKS URL keys are fetched from; ``None`` with ``jwt_key``."""

        if iss is None:
            if pk is None:
                raise config_error(
                    "issuer", "cannot be derived: set `publishable_key` (CLERK_PUBLISHABLE_KEY) or `issuer`"
                )
            iss = pk.issuer
        elif not isinstance(iss, str) or not iss.strip():
            raise config_error("issuer", "must be a non-empty string")
        self.issuer: str = iss
        """The exact ``iss`` every token must carry."""
        self.authorized_parties = parties(authorized_parties, env)
        self._policy = ClaimPolicy(
            self.issuer, self.authorized_parties, self.clock_skew, allow_pending_sessions
        )
        self._headers_cache = HeaderCache()
        # token -> (session, exp, earliest valid instant: max(iat, nbf), key generation,
        # keys usable until), bounded in entries and in bytes.
        self._cache: BoundedCache[tuple[Session | MachineCredential, float, float, int, float]] = (
            BoundedCache(token_cache_size, token_cache_bytes)
        )
        backend_url = DEFAULT_API_URL
        if sk is not None or machine_sk is not None:
            backend_url = validate_url("api_url", api)
        self.backend = BackendAPI(
            api_url=backend_url,
            secret_key=sk,
            machine_secret_key=machine_sk,
            timeout=policy.http_timeout,
            clock=self.clock,
            positive_ttl=seconds("machine_cache_ttl", machine_cache_ttl, low=0, high=3600),
            negative_ttl=seconds("machine_negative_cache_ttl", machine_negative_cache_ttl, low=0, high=3600),
            cache_size=machine_cache_size,
            rate=seconds("backend_api_rate", backend_api_rate, low=0.01, high=100_000),
            transport=transport,
        )
        """Verifies opaque machine tokens (``mt_``, ``oat_``, ``ak_``) through the Backend API."""
        self.users = UserDirectory(
            api_url=backend_url,
            secret_key=sk,
            timeout=policy.http_timeout,
            ttl=seconds("user_cache_ttl", user_cache_ttl, low=0, high=86400),
            cache_size=user_cache_size,
            transport=transport,
        )
        """Users and organization memberships from the Backend API (`user`, the organization rule)."""
        self.organization: OrganizationRule | None = org_rule
        """The ``organization_id``/``organization_slug`` restriction, or ``None``."""
        self._bearer_lines: dict[str, tuple[str, str]] = {}
        """The guards' index of ``Authorization`` lines that carried a verified token:
        line tail -> (whole line, token); see `Guard.cached`. Only a hint: the
        token is still looked up (and every entry check run) in ``_cache``."""
        self.keyring = Keyring(
            url=resolved_uri,
            headers=headers,
            policy=policy,
            static_key=static_key,
            transport=transport,
            on_change=self._cache.clear,
        )

    # -- verification --------------------------------------------------------------
    def _cached(self, token: str, accepted: frozenset[str]) -> Session | MachineCredential | None:
        found = self._cache.entries.get(token)
        if found is None:
            return None
        result, exp, active_from, generation, keys_until = found[0]
        now = self.clock()
        # exp, and nbf/iat too: a clock stepped back must not revive a token early.
        # The keys that verified it must still be usable (jwks_max_stale).
        if (
            generation != self.keyring.generation
            or exp <= now - self.clock_skew
            or active_from > now + self.clock_skew
            or time.monotonic() > keys_until
        ):
            self._cache.discard(token)
            return None
        if result.token_type not in accepted:
            raise _not_accepted(result.token_type)
        return result

    def _settled(self, credential: Session | MachineCredential) -> bool:
        """Whether a verified credential needs no organization lookup: no
        restriction, or a session whose active organization (v1/v2 claims) is the
        one required. Every path that returns a cached credential without
        `verify`/`averify` (the guards' no-await shortcut) must ask this first."""
        rule = self.organization
        return rule is None or (
            type(credential) is Session and credential._org_fields()[rule.field] == rule.value
        )

    def _remember(
        self, token: str, result: Session | MachineCredential, claims: dict[str, Any], generation: int
    ) -> None:
        if self._cache.max_entries == 0:
            return
        # exp/iat are numbers, nbf a number when present (checked before).
        nbf = claims.get("nbf")
        issued_at = claims["iat"]
        active_from = issued_at if nbf is None else max(issued_at, nbf)
        keys_until = self.keyring.usable_until()
        entry = (result, float(claims["exp"]), float(active_from), generation, keys_until)
        self._cache.put(token, entry, charge(token, claims))

    def _key_rejected(
        self, decision: Decision, retry_of_bad_signature: bool
    ) -> NotAuthenticated | KeysUnavailable:
        if decision.unavailable:
            return KeysUnavailable(retry_after=decision.retry_after)
        if retry_of_bad_signature:
            return NotAuthenticated("token-invalid-signature", "the token signature is invalid")
        return NotAuthenticated("jwk-kid-mismatch", "the token was signed by an unknown key")

    @staticmethod
    def _jwt_kind(parsed: ParsedToken, accepted: frozenset[str]) -> tuple[str, dict[str, Any] | None]:
        """The kind of a JWT, refused before any key lookup when not accepted.

        A header without a category leaves it to ``sub`` (Clerk's rule: ``mch_``
        is a machine), so that payload is decoded now, and reused after the
        signature check; nothing in it is trusted before then.
        """
        header = parsed.header_kind
        claims = None
        if header == HEADER_NEUTRAL:
            claims = decode_payload(parsed)
            sub = claims.get("sub")
            kind = M2M_TOKEN if isinstance(sub, str) and sub.startswith(M2M_SUBJECT_PREFIX) else SESSION_TOKEN
        elif header == HEADER_M2M:
            kind = M2M_TOKEN
        elif header == HEADER_OAUTH:
            kind = OAUTH_TOKEN
        else:
            kind = SESSION_TOKEN
        if kind not in accepted:
            raise _not_accepted(kind)
        return kind, claims

    def _finish(
        self, token: str, parsed: ParsedToken, kind: str, claims: dict[str, Any] | None, generation: int
    ) -> Session | MachineCredential:
        if claims is None:
            claims = decode_payload(parsed)
        result: Session | MachineCredential
        if kind == SESSION_TOKEN:
            check_claims(claims, self._policy, self.clock())
        else:
            check_machine_claims(claims, kind == M2M_TOKEN, self.clock_skew, self.clock())
        try:
            # The freshly decoded dict is private to us: the result owns it, no copy.
            if kind == SESSION_TOKEN:
                result = Session._own(claims)
            else:
                result = MachineCredential._from_jwt(kind, claims)  # type: ignore[arg-type]
        except Exception:  # defensive: claim types were checked, but never 500
            raise NotAuthenticated("token-invalid-claims", "the token claims are malformed") from None
        self._remember(token, result, claims, generation)
        return result

    @staticmethod
    def _accepted(accepts_token: object) -> frozenset[str]:
        return _SESSION_ONLY if accepts_token == SESSION_TOKEN else accepted_kinds(accepts_token)

    @overload
    def verify(self, token: str, accepts_token: Literal["session_token"] = ...) -> Session: ...
    @overload
    def verify(self, token: str, accepts_token: AcceptsToken) -> Session | MachineCredential: ...

    def verify(self, token: str, accepts_token: AcceptsToken = SESSION_TOKEN) -> Session | MachineCredential:
        """Verify a token from sync code.

        Args:
            token: The credential as received (without ``Bearer``).
            accepts_token: The kinds accepted: ``"session_token"`` (default),
                ``"m2m_token"``, ``"oauth_token"``, ``"api_key"``, a list of
                them, or ``"any"``. Another kind is refused (401
                ``token-type-not-accepted``) before any key lookup or request.

        Returns:
            A [`Session`][clerkguard.Session], or a
            [`MachineCredential`][clerkguard.MachineCredential] for a machine kind.

        Raises:
            AuthError: 401 for any invalid token (``.reason`` says which
                rule); 403 ``organization-mismatch`` when ``organization_id``
                / ``organization_slug`` is set and the credential is not of
                that organization; 503 when no signing keys (or no Backend
                API answer, for opaque machine tokens and membership lookups)
                could be obtained. Nothing else escapes, whatever ``token`` holds.
        """
        accepted = self._accepted(accepts_token)
        if type(token) is str:
            cached = self._cached(token, accepted)
            if cached is not None:
                if self._settled(cached):
                    return cached
                return self._in_organization_sync(cached)
            opaque = _opaque_kind(token)
            if opaque is not None:
                if opaque not in accepted:
                    raise _not_accepted(opaque)
                _check_opaque(token)
                credential = self.backend.verify_sync(opaque, token)
                return credential if self.organization is None else self._in_organization_sync(credential)
        parsed = parse_token(token, self._headers_cache)
        kind, claims = self._jwt_kind(parsed, accepted)
        decision = self.keyring.key_sync(parsed.kid)
        if decision.step is not Step.USE or decision.key is None:
            raise self._key_rejected(decision, False)
        if not verify_signature(parsed, decision.key):
            # Clerk's kid is the instance id, so a rotated key keeps its kid:
            # one refetch (cooldown permitting), then one retry.
            decision = self.keyring.key_sync(parsed.kid, rejected=decision.generation)
            if decision.step is not Step.USE or decision.key is None:
                raise self._key_rejected(decision, True)
            if not verify_signature(parsed, decision.key):
                raise NotAuthenticated("token-invalid-signature", "the token signature is invalid")
        result = self._finish(token, parsed, kind, claims, decision.generation)
        return result if self.organization is None else self._in_organization_sync(result)

    @overload
    async def averify(self, token: str, accepts_token: Literal["session_token"] = ...) -> Session: ...
    @overload
    async def averify(self, token: str, accepts_token: AcceptsToken) -> Session | MachineCredential: ...

    async def averify(
        self, token: str, accepts_token: AcceptsToken = SESSION_TOKEN
    ) -> Session | MachineCredential:
        """Verify a token from async code; never blocks the event loop.

        Same arguments, result and errors as `verify`; only a JWKS
        fetch or a Backend API request awaits.
        """
        accepted = self._accepted(accepts_token)
        if type(token) is str:
            cached = self._cached(token, accepted)
            if cached is not None:
                if self._settled(cached):
                    return cached
                return await self._in_organization_async(cached)
            opaque = _opaque_kind(token)
            if opaque is not None:
                if opaque not in accepted:
                    raise _not_accepted(opaque)
                _check_opaque(token)
                credential = await self.backend.verify_async(opaque, token)
                if self.organization is None:
                    return credential
                return await self._in_organization_async(credential)
        parsed = parse_token(token, self._headers_cache)
        kind, claims = self._jwt_kind(parsed, accepted)
        decision = await self.keyring.key_async(parsed.kid)
        if decision.step is not Step.USE or decision.key is None:
            raise self._key_rejected(decision, False)
        if not verify_signature(parsed, decision.key):
            decision = await self.keyring.key_async(parsed.kid, rejected=decision.generation)
            if decision.step is not Step.USE or decision.key is None:
                raise self._key_rejected(decision, True)
            if not verify_signature(parsed, decision.key):
                raise NotAuthenticated("token-invalid-signature", "the token signature is invalid")
        result = self._finish(token, parsed, kind, claims, decision.generation)
        return result if self.organization is None else await self._in_organization_async(result)

    # -- the organization restriction and users ------------------------------------------
    def _in_organization_sync(self, credential: Credential) -> Credential:
        rule = self.organization
        assert rule is not None
        # The common case inline (a session whose active organization is the
        # one): the verified-token cache hit stays a few hundred nanoseconds.
        if type(credential) is Session and credential._org_fields()[rule.field] == rule.value:
            return credential
        subject = rule.pending(credential)  # the claims decide when they can: no request
        if subject is None:
            return credential
        is_organization, who = subject
        if is_organization:
            if self.users.slug_sync(who) != rule.slug:
                raise mismatch()
        elif not self.users.member_sync(who, rule.org_id, rule.slug):
            raise mismatch()
        return credential

    async def _in_organization_async(self, credential: Credential) -> Credential:
        rule = self.organization
        assert rule is not None
        if type(credential) is Session and credential._org_fields()[rule.field] == rule.value:
            return credential
        subject = rule.pending(credential)
        if subject is None:
            return credential
        is_organization, who = subject
        if is_organization:
            if await self.users.slug_async(who) != rule.slug:
                raise mismatch()
        elif not await self.users.member_async(who, rule.org_id, rule.slug):
            raise mismatch()
        return credential

    def user(self, who: Credential | str) -> User:
        """The signed-in user, from the Backend API (``GET /v1/users/{id}``); needs ``secret_key``.

        Cached per user for ``user_cache_ttl`` seconds; one request per user
        at a time, shared by every thread and task asking. Blocks: in async
        code use [`auser`][clerkguard.ClerkAuth.auser].

        Args:
            who: A verified [`Session`][clerkguard.Session], a
                [`MachineCredential`][clerkguard.MachineCredential] acting for
                a user (OAuth tokens, user API keys), or a user id.

        Raises:
            NotAuthenticated: 401 ``user-not-found`` when Clerk has no such
                user (deleted since the token was issued).
            BackendUnavailable: 503 when the Backend API gave no answer.
            ValueError: ``who`` names no user (a machine's credential, a
                string that cannot be a Clerk user id).
        """
        return self.users.user_sync(_user_id_of(who))

    async def auser(self, who: Credential | str) -> User:
        """[`user`][clerkguard.ClerkAuth.user] from async code; never blocks the event loop."""
        return await self.users.user_async(_user_id_of(who))

    def forget_user(self, user_id: str) -> None:
        """Drop what is cached about ``user_id`` (its user object, its membership verdict).

        Call it from a ``user.updated``/``organizationMembership.deleted``
        webhook handler so the change bites before ``user_cache_ttl`` runs out.
        """
        self.users.forget(user_id)

    # -- health and lifecycle ----------------------------------------------------------
    @property
    def stats(self) -> JWKSStats:
        """Key-cache statistics (fetches, failures, last success, key ids)."""
        return self.keyring.stats()

    def close(self) -> None:
        """Stop background refreshers; the instance still verifies (lazily) afterwards."""
        self.backend.close()
        self.users.close()
        self.keyring.close()

    async def aclose(self) -> None:
        """Async `close`: also cancels the async refresher task."""
        self.backend.close()
        self.users.close()
        await self.keyring.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        # Error reporters record the repr of locals: no credentials or query in it.
        source = "jwt_key" if self.jwks_uri is None else safe_url(self.jwks_uri)
        return f"ClerkAuth(name={self.name!r}, issuer={self.issuer!r}, keys={source!r})"


def _user_id_of(who: object) -> str:
    if isinstance(who, (Session, MachineCredential)):
        user_id = who.user_id
        if user_id is None:
            raise ValueError(f"a {who.token_type} of {who.subject!r} acts for no user")  # type: ignore[union-attr]
    else:
        user_id = who  # type: ignore[assignment]
    if not valid_user_id(user_id):
        raise ValueError("not a Clerk user id")
    return user_id  # type: ignore[return-value]


#: Clerk organization ids and slugs as they can appear in a URL path or a claim.
_ORG_TEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _organization_rule(
    org_id: str | None, slug: str | None, secret_key: str | None
) -> OrganizationRule | None:
    if org_id is None and slug is None:
        return None
    if org_id is not None and slug is not None:
        raise ConfigurationError(
            "`organization_id` (env CLERK_ORGANIZATION_ID) and `organization_slug` "
            "(env CLERK_ORGANIZATION_SLUG): set one of them, not both"
        )
    if org_id is not None and (
        not isinstance(org_id, str) or not org_id.startswith("org_") or not set(org_id) <= _ORG_TEXT
    ):
        raise config_error("organization_id", "must be a Clerk organization id (org_...)")
    if slug is not None and (
        not isinstance(slug, str) or not slug or len(slug) > 256 or not set(slug) <= _ORG_TEXT
    ):
        raise config_error("organization_slug", "must be an organization slug (letters, digits, - and _)")
    if secret_key is None:
        option = "organization_id" if org_id is not None else "organization_slug"
        raise config_error(
            option, "needs `secret_key` (CLERK_SECRET_KEY): memberships are read from the Backend API"
        )
    return OrganizationRule(org_id, slug)


def _no_key_source() -> Exception:
    names = ", ".join(
        f"{opt} ({ENV_VARS[opt]})" for opt in ("publishable_key", "secret_key", "jwks_uri", "jwt_key")
    )
    return config_error("publishable_key", f"no key source configured: set one of {names}")
