"""`ClerkAuth`: configuration plus verification of Clerk session tokens."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from typing_extensions import Self

from ._cache import BoundedCache, charge
from ._core.jwks import Decision, JWKSPolicy, Step
from ._core.keys import key_from_pem
from ._core.token import (
    ClaimPolicy,
    HeaderCache,
    ParsedToken,
    check_claims,
    decode_payload,
    parse_token,
    verify_signature,
)
from ._keyring import JWKSStats, Keyring
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
from .errors import KeysUnavailable, NotAuthenticated
from .session import Session

__all__ = ["Authorize", "ClerkAuth"]

#: ``authorize(session, request)``: return exactly ``True`` to allow (sync or async).
Authorize = Callable[[Session, Any], "bool | Awaitable[bool]"]


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

        pk = parse_publishable_key(pk_text) if pk_text else None
        if sk is not None and (not sk.startswith("sk_") or len(sk) < 8 or not sk.isprintable()):
            raise config_error("secret_key", "must be a Clerk secret key starting with sk_")
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
        self._cache: BoundedCache[tuple[Session, float, float, int, float]] = BoundedCache(
            token_cache_size, token_cache_bytes
        )
        self.keyring = Keyring(
            url=resolved_uri,
            headers=headers,
            policy=policy,
            static_key=static_key,
            transport=transport,
            on_change=self._cache.clear,
        )

    # -- verification --------------------------------------------------------------
    def _cached(self, token: str) -> Session | None:
        found = self._cache.entries.get(token)
        if found is None:
            return None
        session, exp, active_from, generation, keys_until = found[0]
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
        return session

    def _remember(self, token: str, session: Session, claims: dict[str, Any], generation: int) -> None:
        if self._cache.max_entries == 0:
            return
        # nbf is a number when present (checked before).
        nbf = claims.get("nbf")
        active_from = session.issued_at if nbf is None else max(session.issued_at, nbf)
        keys_until = self.keyring.usable_until()
        entry = (session, float(session.expires_at), float(active_from), generation, keys_until)
        self._cache.put(token, entry, charge(token, claims))

    def _key_rejected(
        self, decision: Decision, retry_of_bad_signature: bool
    ) -> NotAuthenticated | KeysUnavailable:
        if decision.unavailable:
            return KeysUnavailable(retry_after=decision.retry_after)
        if retry_of_bad_signature:
            return NotAuthenticated("token-invalid-signature", "the token signature is invalid")
        return NotAuthenticated("jwk-kid-mismatch", "the token was signed by an unknown key")

    def _finish(self, token: str, parsed: ParsedToken, generation: int) -> Session:
        claims = decode_payload(parsed)
        check_claims(claims, self._policy, self.clock())
        try:
            # The freshly decoded dict is private to us: the session owns it, no copy.
            session = Session._own(claims)
        except Exception:  # defensive: claim types were checked, but never 500
            raise NotAuthenticated("token-invalid-claims", "the token claims are malformed") from None
        self._remember(token, session, claims, generation)
        return session

    def verify(self, token: str) -> Session:
        """Verify a session token from sync code.

        Returns:
            The verified [`Session`][clerkguard.Session].

        Raises:
            AuthError: 401 for any invalid token (``.reason`` says which
                rule), 503 when no signing keys could be obtained. Nothing
                else escapes, whatever ``token`` holds.
        """
        cached = self._cached(token) if type(token) is str else None
        if cached is not None:
            return cached
        parsed = parse_token(token, self._headers_cache)
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
        return self._finish(token, parsed, decision.generation)

    async def averify(self, token: str) -> Session:
        """Verify a session token from async code; never blocks the event loop.

        Same result and errors as [`verify`][clerkguard.auth.ClerkAuth.verify]; only a JWKS fetch awaits.
        """
        cached = self._cached(token) if type(token) is str else None
        if cached is not None:
            return cached
        parsed = parse_token(token, self._headers_cache)
        decision = await self.keyring.key_async(parsed.kid)
        if decision.step is not Step.USE or decision.key is None:
            raise self._key_rejected(decision, False)
        if not verify_signature(parsed, decision.key):
            decision = await self.keyring.key_async(parsed.kid, rejected=decision.generation)
            if decision.step is not Step.USE or decision.key is None:
                raise self._key_rejected(decision, True)
            if not verify_signature(parsed, decision.key):
                raise NotAuthenticated("token-invalid-signature", "the token signature is invalid")
        return self._finish(token, parsed, decision.generation)

    # -- health and lifecycle ----------------------------------------------------------
    @property
    def stats(self) -> JWKSStats:
        """Key-cache statistics (fetches, failures, last success, key ids)."""
        return self.keyring.stats()

    def close(self) -> None:
        """Stop background refreshers; the instance still verifies (lazily) afterwards."""
        self.keyring.close()

    async def aclose(self) -> None:
        """Async [`close`][clerkguard.auth.ClerkAuth.close]: also cancels the async refresher task."""
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


def _no_key_source() -> Exception:
    names = ", ".join(
        f"{opt} ({ENV_VARS[opt]})" for opt in ("publishable_key", "secret_key", "jwks_uri", "jwt_key")
    )
    return config_error("publishable_key", f"no key source configured: set one of {names}")
