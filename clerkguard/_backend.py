"""The Backend API client: verifying opaque machine tokens (``mt_``, ``oat_``, ``ak_``).

Every request is `clerkguard._http`'s hardened one (whole-request
deadline, size cap, no redirects, strict JSON, credentials never logged) and
runs under `SingleFlight`: one request per token,
joined by every thread and task asking about it meanwhile.

Answers are cached per token (by its SHA-256, so a memory dump shows no API
key): a valid credential until its expiry or ``machine_cache_ttl``,
whichever is first; an unknown, revoked or expired token for
``machine_negative_cache_ttl``. A token bucket caps the calls made for
tokens that are not cached (``backend_api_rate`` per second), so a flood of
distinct made-up tokens cannot become a flood of Backend API calls; beyond
it those tokens get 503 with ``Retry-After``, and cached ones keep working.

The request and answer shapes are those of Clerk's Backend API as
``@clerk/backend`` uses them (``POST /v1/m2m_tokens/verify`` with
``{"token"}``, ``/v1/oauth_applications/access_tokens/verify`` with
``{"access_token"}``, ``/v1/api_keys/verify`` with ``{"secret"}``; a 404 for
an unknown token). ``tests/fixtures/backend_api_shapes.json`` pins them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._cache import BoundedCache
from ._core.jsonstrict import StrictJSONError, loads_object
from ._flight import SingleFlight
from ._http import FetchControl, FetchError, HTTPRequest, HTTPResponse, request_async, request_sync
from .config import safe_url
from .errors import AuthError, NotAuthenticated
from .machine import API_KEY, M2M_TOKEN, OAUTH_TOKEN, MachineCredential, TokenType

__all__ = ["BackendAPI", "BackendUnavailable", "MAX_OPAQUE_TOKEN"]

logger = logging.getLogger("clerkguard.backend")

#: Longest opaque token sent to the Backend API (Clerk's are well under 100 characters).
MAX_OPAQUE_TOKEN = 512
#: Largest Backend API answer read.
MAX_ANSWER_BYTES = 64 * 1024
#: Minimum seconds between two WARNING logs about a failing Backend API.
_WARN_EVERY = 60.0

#: kind -> (path under api_url, body member holding the token).
ENDPOINTS: Mapping[TokenType, tuple[str, str]] = {
    M2M_TOKEN: ("/v1/m2m_tokens/verify", "token"),
    OAUTH_TOKEN: ("/v1/oauth_applications/access_tokens/verify", "access_token"),
    API_KEY: ("/v1/api_keys/verify", "secret"),
}
#: Statuses whose answer is about the token (read); anything else is about the service.
_ANSWERED = frozenset({200, 400, 404, 410, 422})


class BackendUnavailable(AuthError):
    """503: the Backend API could not judge an opaque machine token (down, slow, misconfigured)."""

    def __init__(self, reason: str = "backend-api-unavailable", *, retry_after: float = 1.0) -> None:
        super().__init__(503, reason, "the Backend API is temporarily unavailable", retry_after=retry_after)


@dataclass(frozen=True, slots=True)
class _Rejected:
    """The Backend API judged the token invalid (401; cached briefly)."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Unavailable:
    """No judgement could be had (503; never cached)."""

    reason: str
    log: str
    retry_after: float = 1.0


_Outcome = MachineCredential | _Rejected | _Unavailable


class _RateLimit:
    """A token bucket: ``rate`` calls per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a call may go out now, else seconds until one may."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_answer(kind: TokenType, body: bytes, now: float) -> MachineCredential | _Rejected | _Unavailable:
    """Judge a 200 answer of a verify endpoint (``now``: Unix seconds).

    A malformed answer is the service's fault, not the token's: 503.
    """
    try:
        data = loads_object(body)
    except StrictJSONError:
        return _Unavailable("backend-api-unavailable", "answer is not a JSON object")
    token_id, subject = data.get("id"), data.get("subject")
    scopes = data.get("scopes", [])
    claims, expiration = data.get("claims"), data.get("expiration")
    name, client_id = data.get("name"), data.get("client_id")
    if (
        not isinstance(token_id, str)
        or not isinstance(subject, str)
        or not subject
        or not isinstance(scopes, list)
        or not all(isinstance(s, str) for s in scopes)
        or not (claims is None or isinstance(claims, dict))
        or not (expiration is None or _number(expiration))
        or not isinstance(data.get("revoked", False), bool)
        or not isinstance(data.get("expired", False), bool)
        or not (name is None or isinstance(name, str))
        or not (client_id is None or isinstance(client_id, str))
    ):
        return _Unavailable("backend-api-unavailable", "answer does not have the expected fields")
    if data.get("revoked") is True:
        return _Rejected("token-revoked", "the token has been revoked")
    expires_at = None if expiration is None else expiration / 1000  # Clerk sends milliseconds
    if data.get("expired") is True or (expires_at is not None and expires_at <= now):
        return _Rejected("token-expired", "the token has expired")
    if kind == M2M_TOKEN and not subject.startswith("mch_"):
        return _Unavailable("backend-api-unavailable", "an M2M token whose subject is not a machine")
    created = data.get("created_at")
    return MachineCredential(
        token_type=kind,
        id=token_id,
        subject=subject,
        scopes=scopes,
        claims=claims,
        name=name if kind == API_KEY else None,
        client_id=client_id if kind == OAUTH_TOKEN else None,
        expires_at=expires_at,
        issued_at=created / 1000 if isinstance(created, (int, float)) and _number(created) else None,
        format="opaque",
        raw={k: v for k, v in data.items() if k not in ("token", "secret")},  # never keep a secret
    )


class BackendAPI:
    """Verifies opaque machine tokens for one [`ClerkAuth`][clerkguard.ClerkAuth].

    Args:
        api_url: Backend API base URL (validated by the caller).
        secret_key: The instance secret key (``sk_...``), if configured.
        machine_secret_key: A machine's secret key, used for M2M tokens when set.
        timeout: Bound on one whole request, and on any wait for one.
        clock: ``() -> Unix seconds`` (expiry of answers).
        positive_ttl: Longest time a valid answer is reused.
        negative_ttl: How long an invalid/revoked/expired answer is reused.
        cache_size: Most answers remembered (0: none).
        rate: Backend API calls per second for tokens not in the cache.
        transport: An ``httpx`` transport used instead of the network.
    """

    def __init__(
        self,
        *,
        api_url: str,
        secret_key: str | None,
        machine_secret_key: str | None,
        timeout: float,
        clock: Callable[[], float],
        positive_ttl: float,
        negative_ttl: float,
        cache_size: int,
        rate: float,
        transport: Any = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._secret_key = secret_key
        self._machine_secret_key = machine_secret_key
        self.timeout = timeout
        self.clock = clock
        self.positive_ttl = positive_ttl
        self.negative_ttl = negative_ttl
        self._transport = transport
        # digest -> (outcome, reusable until monotonic time); 64 B + answer per entry.
        self.cache: BoundedCache[tuple[_Outcome, float]] = BoundedCache(cache_size, 16 * 2**20)
        self._flights: SingleFlight[bytes, _Outcome] = SingleFlight(
            timeout, lambda reason: _Unavailable("backend-api-unavailable", reason)
        )
        self._rate = _RateLimit(rate, max(1.0, 2 * rate))
        self._last_warning = float("-inf")
        #: Requests sent (tests and stats).
        self.requests = 0

    def __repr__(self) -> str:
        return f"BackendAPI(api_url={safe_url(self.api_url)!r})"

    # -- the pieces -------------------------------------------------------------------
    def _request(self, kind: TokenType, token: str) -> HTTPRequest | _Unavailable:
        secret = self._secret_key
        if kind == M2M_TOKEN and self._machine_secret_key is not None:
            secret = self._machine_secret_key
        if secret is None:
            needs = "machine_secret_key or secret_key" if kind == M2M_TOKEN else "secret_key"
            return _Unavailable("backend-api-unavailable", f"no {needs} configured for {kind} verification")
        path, member = ENDPOINTS[kind]
        return HTTPRequest(
            "POST",
            self.api_url + path,
            {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            json.dumps({member: token}).encode(),
            max_bytes=MAX_ANSWER_BYTES,
            accept=_ANSWERED,
        )

    def _judge(self, kind: TokenType, response: HTTPResponse) -> _Outcome:
        if response.status != 200:  # 404 (Clerk: "not found"), 400/410/422
            return _Rejected("token-invalid", "the token is not a valid credential")
        return parse_answer(kind, response.body, self.clock())

    def _failed(self, error: FetchError) -> _Unavailable:
        if error.status in (401, 403):
            return _Unavailable("backend-api-unavailable", f"{error} (is the secret key right?)")
        return _Unavailable("backend-api-unavailable", str(error))

    def _lookup(self, digest: bytes) -> _Outcome | None:
        found = self.cache.get(digest.hex())
        if found is None:
            return None
        outcome, until = found
        expires = outcome.expires_at if isinstance(outcome, MachineCredential) else None
        if time.monotonic() >= until or (expires is not None and expires <= self.clock()):
            self.cache.discard(digest.hex())
            return None
        return outcome

    def _store(self, digest: bytes, outcome: _Outcome) -> None:
        now = time.monotonic()
        if isinstance(outcome, MachineCredential):
            until = now + self.positive_ttl
            if outcome.expires_at is not None:
                until = min(until, now + outcome.expires_at - self.clock())
            size = 1024 + 4 * len(repr(outcome.raw))
        elif isinstance(outcome, _Rejected):
            until, size = now + self.negative_ttl, 256
        else:
            return  # an outage is never remembered
        self.cache.put(digest.hex(), (outcome, until), size)

    def _start(self, kind: TokenType, digest: bytes, token: str) -> HTTPRequest | _Outcome:
        """What the flight's leader does before any I/O: the rate limit, the request."""
        wait = self._rate.take()
        if wait:
            return _Unavailable("backend-api-rate-limited", "rate limit reached", retry_after=wait)
        self.requests += 1
        return self._request(kind, token)

    def _land(self, digest: bytes, outcome: _Outcome) -> _Outcome:
        self._store(digest, outcome)
        return outcome

    def _raise(self, kind: TokenType, outcome: _Outcome) -> MachineCredential:
        if isinstance(outcome, MachineCredential):
            return outcome
        if isinstance(outcome, _Rejected):
            raise NotAuthenticated(outcome.reason, outcome.detail)
        if outcome.reason != "backend-api-rate-limited":
            self._warn(kind, outcome.log)
        raise BackendUnavailable(outcome.reason, retry_after=max(1.0, outcome.retry_after))

    def _warn(self, kind: TokenType, why: str) -> None:
        now = time.monotonic()
        loud = now - self._last_warning >= _WARN_EVERY
        if loud:
            self._last_warning = now
        path = safe_url(self.api_url + ENDPOINTS[kind][0])
        logger.log(logging.WARNING if loud else logging.DEBUG, "Backend API %s failed: %s", path, why)

    # -- sync and async ---------------------------------------------------------------
    def verify_sync(self, kind: TokenType, token: str) -> MachineCredential:
        """Judge an opaque ``token`` of ``kind`` from a thread (waits at most ``timeout``)."""
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._lookup(digest)
        if cached is None:

            def operation(control: FetchControl) -> _Outcome:
                start = self._start(kind, digest, token)
                if not isinstance(start, HTTPRequest):
                    return start
                try:
                    response = request_sync(start, control, self._transport)
                except FetchError as exc:
                    return self._failed(exc)
                return self._land(digest, self._judge(kind, response))

            cached = self._flights.run_sync(digest, operation)
        return self._raise(kind, cached)

    async def verify_async(self, kind: TokenType, token: str) -> MachineCredential:
        """Judge an opaque ``token`` of ``kind`` from a coroutine; never blocks the loop."""
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._lookup(digest)
        if cached is None:

            async def operation() -> _Outcome:
                start = self._start(kind, digest, token)
                if not isinstance(start, HTTPRequest):
                    return start
                try:
                    response = await request_async(start, self.timeout, self._transport)
                except FetchError as exc:
                    return self._failed(exc)
                return self._land(digest, self._judge(kind, response))

            cached = await self._flights.run_async(digest, operation)
        return self._raise(kind, cached)

    def close(self) -> None:
        """Abort requests in flight (their waiters get 503)."""
        self._flights.cancel_all()
