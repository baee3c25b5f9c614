"""The JWKS cache state machine (design section 5), shared by sync and async callers.

`JWKSState` decides; it never fetches, sleeps or locks. The I/O shell
(`clerkguard._keyring`) holds a lock around every call, performs the
fetches it is told to start, and reports back with `JWKSState.finish`.
Times are monotonic seconds supplied by the caller, so every rule here is
tested with plain numbers.

The rules, in one place:

* keys are fresh for ``ttl``; a background refresh is due at
  `JWKSPolicy.refresh_after` (before ``ttl`` runs out);
* keys keep serving, stale, until ``ttl + max_stale``; then they are unusable
  (a cold cache again: requests get 503 until a fetch succeeds);
* an unknown ``kid``, or a known ``kid`` whose signature failed, may start a
  fetch at most once per ``cooldown`` (decided when the fetch starts);
* one fetch at a time: everybody else waits for the one in flight, and a
  fetch older than `JWKSPolicy.flight_abandoned_after` is presumed dead;
* a failed fetch never replaces keys; the next attempt backs off
  exponentially (1, 2, 4, ... seconds) within the limits below;
* a result that arrives after a *newer* fetch has finished is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from .keys import KeySet

if TYPE_CHECKING:
    from joserfc.jwk import RSAKey

__all__ = ["Decision", "JWKSPolicy", "JWKSState", "Step"]

#: Longest pause between two failed background refreshes (also capped by ``ttl``).
MAX_BACKOFF = 300.0


@dataclass(frozen=True, slots=True)
class JWKSPolicy:
    """Timing policy of the key cache (all seconds)."""

    ttl: float = 300.0
    cooldown: float = 30.0
    max_stale: float = 86400.0
    http_timeout: float = 5.0

    @property
    def refresh_after(self) -> float:
        """Age at which a background refresh starts: before ``ttl`` runs out."""
        return max(self.ttl - min(60.0, self.ttl / 5), 0.0)

    @property
    def flight_abandoned_after(self) -> float:
        """An in-flight fetch older than this is presumed dead (its loop died)."""
        return 2 * self.http_timeout + 1.0


class Step(Enum):
    """What the shell must do next."""

    USE = "use"  # verify with `key`
    WAIT = "wait"  # a fetch is in flight: wait for it, then ask again
    FETCH = "fetch"  # start a fetch (the flight is already recorded), wait, ask again
    REJECT = "reject"  # no key can be had now


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of `JWKSState.resolve`."""

    step: Step
    key: RSAKey | None = None
    generation: int = 0
    #: With USE: also start a background refresh (already recorded as the flight).
    refresh: bool = False
    #: With REJECT: True when keys are unavailable (503), False for an unknown kid (401).
    unavailable: bool = False
    #: With REJECT and ``unavailable``: seconds until a fetch may be tried again.
    retry_after: float = 0.0


class JWKSState:
    """Key set, freshness, cooldown and single-flight bookkeeping."""

    def __init__(self, policy: JWKSPolicy) -> None:
        self.policy = policy
        self.keyset: KeySet | None = None
        #: Bumped whenever the key material changes; cached results of older
        #: generations are discarded.
        self.generation = 0
        self.fetched_at: float | None = None
        #: Id of the most recently started fetch, and when it started (None: idle).
        self.flight_id = 0
        self.flight_started_at: float | None = None
        self.flight_from_token = False
        #: Id of the newest fetch whose result was recorded.
        self.applied_flight_id = 0
        self.next_token_fetch_at = float("-inf")
        self.next_refresh_at = float("-inf")
        self.consecutive_failures = 0
        self.fetches = 0
        self.failures = 0
        self.last_error: str | None = None

    # -- queries ---------------------------------------------------------------
    def usable(self, now: float) -> KeySet | None:
        """The key set if it may still be used (fresh or within ``max_stale``)."""
        if self.keyset is None or self.fetched_at is None:
            return None
        if now - self.fetched_at > self.policy.ttl + self.policy.max_stale:
            return None
        return self.keyset

    def stale(self, now: float) -> bool:
        """True when there are no keys, or they are older than ``ttl``."""
        return self.fetched_at is None or now - self.fetched_at > self.policy.ttl

    def in_flight(self, now: float) -> bool:
        """True while a fetch is running (and not presumed dead)."""
        started = self.flight_started_at
        return started is not None and now - started < self.policy.flight_abandoned_after

    def refresh_due(self, now: float) -> bool:
        """True when a background refresh should start now."""
        return not self.in_flight(now) and now >= self.next_refresh_at

    def refresh_delay(self, now: float) -> float:
        """Seconds a refresher may sleep before something can be due.

        Positive whenever `start_refresh` would refuse, so a refresher
        that sleeps this long and then tries never spins: while a fetch is in
        flight it sleeps until that fetch is presumed dead (the shell also
        wakes it when the fetch finishes); otherwise until the next refresh.
        """
        started = self.flight_started_at
        if started is not None and self.in_flight(now):
            # The same expression as in_flight's test: `age < limit` guarantees
            # `limit - age > 0` in floating point, where `started + limit - now`
            # can round to 0.0 and make a refresher spin.
            return self.policy.flight_abandoned_after - (now - started)
        return max(self.next_refresh_at - now, 0.0)

    # -- transitions -----------------------------------------------------------
    def _start(self, now: float, from_token: bool) -> None:
        self.flight_id += 1
        self.flight_started_at = now
        self.flight_from_token = from_token
        self.fetches += 1
        if from_token and self.usable(now) is not None:
            # At most one token-triggered *refetch* per cooldown, decided at
            # start. A cold fetch is not a refetch: it must not spend the
            # cooldown, or a key rotated within `jwks_cooldown` of start-up
            # would be refused until it ran out (failures back off on their own).
            self.next_token_fetch_at = now + self.policy.cooldown

    def start_refresh(self, now: float) -> bool:
        """Begin a background refresh if one is due; True if the caller must fetch."""
        if not self.refresh_due(now):
            return False
        self._start(now, from_token=False)
        return True

    def resolve(
        self,
        kid: str,
        now: float,
        *,
        rejected_generation: int | None = None,
        waited: bool = False,
    ) -> Decision:
        """Decide how to obtain the key for ``kid``.

        Args:
            kid: The token's key id.
            now: Monotonic time.
            rejected_generation: Set when the key of that generation failed
                the signature check: a rotated key may keep its kid.
            waited: The caller already waited for one fetch; never wait twice.
        """
        keyset = self.usable(now)
        key = keyset.get(kid) if keyset is not None else None
        if key is not None and rejected_generation != self.generation:
            refresh = self.refresh_due(now)
            if refresh:
                self._start(now, from_token=False)
            return Decision(Step.USE, key=key, generation=self.generation, refresh=refresh)
        if waited:
            return self._reject(keyset, now)
        if self.in_flight(now):
            return Decision(Step.WAIT)
        if now >= self.next_token_fetch_at:
            self._start(now, from_token=True)
            return Decision(Step.FETCH)
        return self._reject(keyset, now)

    def _reject(self, keyset: KeySet | None, now: float) -> Decision:
        if keyset is None:
            if self.in_flight(now):
                retry = 1.0
            else:
                retry = max(self.next_token_fetch_at - now, 1.0)
            return Decision(Step.REJECT, unavailable=True, retry_after=retry)
        return Decision(Step.REJECT, generation=self.generation)

    def _backoff(self) -> float:
        # 1, 2, 4, ... seconds after the 1st, 2nd, 3rd... consecutive failure.
        return float(2 ** min(self.consecutive_failures - 1, 16))

    def finish(self, flight_id: int, now: float, result: KeySet | str) -> bool:
        """Record the outcome of a fetch: a new key set, or an error reason.

        A failure never replaces good keys. Returns True when the key material
        changed (the caller drops cached verification results).
        """
        if flight_id == self.flight_id:
            self.flight_started_at = None
        if flight_id < self.applied_flight_id:
            # A newer fetch has already been recorded; this answer is older news.
            return False
        self.applied_flight_id = flight_id
        if isinstance(result, str):
            self.failures += 1
            self.consecutive_failures += 1
            self.last_error = result
            backoff = self._backoff()
            # Background: retry no sooner than the cooldown, no later than ttl.
            self.next_refresh_at = now + min(max(backoff, self.policy.cooldown), self.policy.ttl, MAX_BACKOFF)
            if self.usable(now) is None:
                # Cold: every request is failing, so let a token retry soon,
                # but back off exponentially (up to the cooldown).
                self.next_token_fetch_at = now + min(backoff, self.policy.cooldown)
            return False
        self.consecutive_failures = 0
        self.last_error = None
        self.fetched_at = now
        self.next_refresh_at = now + self.policy.refresh_after
        changed = self.keyset is None or self.keyset.fingerprint != result.fingerprint
        if changed:
            self.generation += 1
        self.keyset = result
        return changed

    def reset_after_fork(self) -> None:
        """Forget any in-flight fetch (its thread or task does not exist in a child).

        A token-triggered fetch in flight had already spent the cooldown on an
        answer this process will never see: the cooldown is given back, or a
        child forked during a cold start would answer 503 for a whole cooldown.
        """
        if self.flight_started_at is not None and self.flight_from_token:
            self.next_token_fetch_at = self.flight_started_at
        self.flight_started_at = None
