"""The JWKS state machine, driven with plain numbers: no sockets, no threads, no sleeping.

Every timing rule of design section 5 is pinned here once; the shells
(``test_faults.py``, ``test_concurrency.py``, ``test_lifecycle.py``) only
prove that real I/O follows these decisions.
"""

from __future__ import annotations

import random
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from clerkguard._core.jwks import MAX_BACKOFF, Decision, JWKSPolicy, JWKSState, Step
from clerkguard._core.keys import KeySet

POLICY = JWKSPolicy(ttl=300, cooldown=30, max_stale=3600, http_timeout=5)


def keyset(*kids: str, material: str = "m") -> KeySet:
    """A key set whose keys are stand-ins (the state machine never looks inside a key)."""
    keys = {kid: cast(RSAKey, object()) for kid in kids}
    return KeySet(keys=keys, fingerprint=tuple((kid, material, "AQAB") for kid in sorted(kids)))


def warm(state: JWKSState, now: float, *kids: str) -> None:
    """Load ``kids`` through a background refresh started and finished at ``now``."""
    assert state.start_refresh(now)
    state.finish(state.flight_id, now, keyset(*kids))


def test_cold_start_fetches_once_and_everyone_else_waits() -> None:
    state = JWKSState(POLICY)
    first = state.resolve("k1", 0.0)
    assert first.step is Step.FETCH
    assert [state.resolve("k1", 0.1).step for _ in range(3)] == [Step.WAIT] * 3
    assert state.fetches == 1
    assert state.finish(state.flight_id, 0.5, keyset("k1")) is True
    after = state.resolve("k1", 0.5, waited=True)
    assert after.step is Step.USE
    assert after.key is state.keyset.keys["k1"]  # type: ignore[union-attr]
    assert after.generation == 1


def test_cold_failure_is_503_with_retry_after_and_backs_off_exponentially() -> None:
    state = JWKSState(POLICY)
    now = 0.0
    retry_afters = []
    for _ in range(7):
        assert state.resolve("k1", now).step is Step.FETCH
        state.finish(state.flight_id, now, "HTTP 500")
        rejected = state.resolve("k1", now, waited=True)
        assert rejected.step is Step.REJECT
        assert rejected.unavailable
        retry_afters.append(rejected.retry_after)
        # Inside the pause nobody fetches: every request is a quick 503.
        assert state.resolve("k1", now + rejected.retry_after - 0.01).step is Step.REJECT
        now += rejected.retry_after
    assert retry_afters == [1, 2, 4, 8, 16, 30, 30]  # capped at the cooldown
    assert state.fetches == 7
    assert state.failures == 7
    assert state.last_error == "HTTP 500"


def test_a_failed_fetch_never_replaces_good_keys() -> None:
    state = JWKSState(POLICY)
    warm(state, 0.0, "k1")
    good = state.keyset
    assert state.resolve("unknown", 100.0).step is Step.FETCH
    assert state.finish(state.flight_id, 100.5, "no usable key in the set") is False
    assert state.keyset is good
    assert state.generation == 1
    assert state.resolve("k1", 101.0).step is Step.USE


def test_unknown_kid_refetches_at_most_once_per_cooldown() -> None:
    state = JWKSState(POLICY)
    warm(state, 0.0, "k1")
    assert state.resolve("attacker-1", 10.0).step is Step.FETCH
    state.finish(state.flight_id, 10.2, keyset("k1"))
    later = [state.resolve(f"attacker-{i}", 10.2 + i * 0.001) for i in range(2, 1000)]
    assert {d.step for d in later} == {Step.REJECT}
    assert not any(d.unavailable for d in later)  # keys exist: an unknown kid is a 401
    assert state.fetches == 2
    assert state.resolve("attacker-x", 40.0).step is Step.FETCH  # 10.0 + cooldown


def test_a_cold_fetch_does_not_spend_the_rotation_cooldown() -> None:
    # Keys rotated seconds after start-up: the first token with the new kid
    # must refetch at once, not wait out a cooldown the cold fetch never owed.
    state = JWKSState(POLICY)
    assert state.resolve("k1", 0.0).step is Step.FETCH
    state.finish(state.flight_id, 0.2, keyset("k1"))
    assert state.resolve("k2", 1.0).step is Step.FETCH
    state.finish(state.flight_id, 1.2, keyset("k1", "k2"))
    assert state.resolve("k2", 1.2, waited=True).step is Step.USE
    # That refetch did start the cooldown.
    assert state.resolve("k3", 2.0).step is Step.REJECT
    assert state.resolve("k3", 1.0 + POLICY.cooldown).step is Step.FETCH
    assert state.fetches == 3


def test_random_kid_flood_makes_at_most_one_fetch_per_cooldown() -> None:
    state = JWKSState(POLICY)
    warm(state, 0.0, "k1")
    rng = random.Random(7)
    now = 1.0
    for _ in range(10_000):
        now += rng.uniform(0, 0.05)  # ~250 s of traffic
        decision = state.resolve(f"kid-{rng.getrandbits(64)}", now)
        if decision.step is Step.FETCH:
            state.finish(state.flight_id, now + 0.1, keyset("k1"))
    token_fetches = state.fetches - 1
    assert 1 <= token_fetches <= 1 + (now - 1.0) // POLICY.cooldown


def test_bad_signature_refetches_then_uses_the_rotated_key() -> None:
    # Clerk's kid is the instance id: a rotated key keeps its kid.
    state = JWKSState(POLICY)
    warm(state, 0.0, "ins_1")
    first = state.resolve("ins_1", 5.0)
    assert first.step is Step.USE
    retry = state.resolve("ins_1", 5.0, rejected_generation=first.generation)
    assert retry.step is Step.FETCH
    assert state.finish(state.flight_id, 5.2, keyset("ins_1", material="rotated")) is True
    rotated = state.resolve("ins_1", 5.2, rejected_generation=first.generation, waited=True)
    assert rotated.step is Step.USE
    assert rotated.generation == first.generation + 1


def test_bad_signature_with_unchanged_keys_is_rejected_without_refetching_again() -> None:
    state = JWKSState(POLICY)
    warm(state, 0.0, "ins_1")
    assert state.resolve("ins_1", 5.0, rejected_generation=1).step is Step.FETCH
    assert state.finish(state.flight_id, 5.1, keyset("ins_1")) is False  # same material
    assert state.generation == 1
    assert state.resolve("ins_1", 5.1, rejected_generation=1, waited=True).step is Step.REJECT
    assert state.resolve("ins_1", 6.0, rejected_generation=1).step is Step.REJECT  # cooldown
    assert state.fetches == 2


def test_background_refresh_starts_before_ttl_and_requests_do_not_wait_for_it() -> None:
    state = JWKSState(POLICY)
    warm(state, 0.0, "k1")
    assert POLICY.refresh_after == 240.0  # ttl - min(60, ttl / 5)
    assert state.resolve("k1", 239.9).refresh is False
    due = state.resolve("k1", 240.0)
    assert due.step is Step.USE
    assert due.refresh is True  # the shell starts it in the background
    during = state.resolve("k1", 241.0)
    assert during.step is Step.USE
    assert during.refresh is False  # one refresh at a time
    assert state.fetches == 2


def test_stale_keys_serve_until_max_stale_then_503() -> None:
    state = JWKSState(POLICY)
    warm(state, 0.0, "k1")
    limit = POLICY.ttl + POLICY.max_stale
    now = 240.0
    while now < limit:
        decision = state.resolve("k1", now)
        assert decision.step is Step.USE
        if decision.refresh:
            state.finish(state.flight_id, now + 1, "HTTP 503")
        now += 7.0
    assert state.stale(limit - 1)
    assert state.usable(limit) is state.keyset
    assert state.usable(limit + 0.001) is None
    expired = state.resolve("k1", limit + 0.001)
    assert expired.step is Step.FETCH
    state.finish(state.flight_id, limit + 0.5, "timed out")
    gone = state.resolve("k1", limit + 0.5, waited=True)
    assert gone.step is Step.REJECT
    assert gone.unavailable


def test_failed_background_refresh_retries_after_backoff_between_cooldown_and_ttl() -> None:
    state = JWKSState(JWKSPolicy(ttl=300, cooldown=30, max_stale=86400))
    warm(state, 0.0, "k1")
    now = 240.0
    waits = []
    for _ in range(12):
        assert state.start_refresh(now)
        state.finish(state.flight_id, now, "HTTP 500")
        waits.append(state.next_refresh_at - now)
        assert not state.start_refresh(now + waits[-1] - 0.01)
        now += waits[-1]
    assert waits == [30, 30, 30, 30, 30, 32, 64, 128, 256, 300, 300, 300]
    assert max(waits) <= MAX_BACKOFF


def test_a_dead_flight_is_abandoned_and_its_late_answer_cannot_roll_keys_back() -> None:
    state = JWKSState(POLICY)
    warm(state, 0.0, "k1")
    assert state.resolve("k2", 100.0).step is Step.FETCH
    dead = state.flight_id
    assert POLICY.flight_abandoned_after == 11.0
    assert state.resolve("k2", 110.9).step is Step.WAIT
    state.next_token_fetch_at = 0.0  # leave the cooldown out of this test
    assert state.resolve("k2", 111.0).step is Step.FETCH  # presumed dead
    newer = state.flight_id
    assert state.finish(newer, 111.5, keyset("k1", "k2", material="new")) is True
    assert state.generation == 2
    # The dead fetch finally answers with the old keys: ignored.
    assert state.finish(dead, 112.0, keyset("k1", material="old")) is False
    assert state.generation == 2
    assert state.resolve("k2", 112.0).step is Step.USE


def test_refresh_delay_sleeps_until_the_next_refresh_or_the_flight_is_presumed_dead() -> None:
    state = JWKSState(POLICY)
    assert state.refresh_delay(0.0) == 0.0  # cold: prefetch now
    assert state.start_refresh(0.0)
    assert state.refresh_delay(1.0) == 10.0  # in flight: until abandoned (11 s)
    state.finish(state.flight_id, 2.0, "connection failed")
    assert state.refresh_delay(2.0) == 30.0  # backoff, at least the cooldown
    assert state.start_refresh(32.0)
    state.finish(state.flight_id, 32.0, keyset("k1"))
    assert state.refresh_delay(32.0) == 240.0


def test_cold_retry_after_is_one_second_while_a_fetch_is_in_flight() -> None:
    state = JWKSState(POLICY)
    assert state.resolve("k1", 0.0).step is Step.FETCH
    decision = state.resolve("k1", 0.1, waited=True)
    assert decision == Decision(Step.REJECT, unavailable=True, retry_after=1.0)


def test_reset_after_fork_forgets_the_parents_flight_but_keeps_its_keys() -> None:
    state = JWKSState(POLICY)
    warm(state, 0.0, "k1")
    assert state.resolve("k2", 10.0).step is Step.FETCH
    state.reset_after_fork()
    assert not state.in_flight(10.1)
    assert state.resolve("k1", 10.1).step is Step.USE
    # The lost fetch does not count against the child's cooldown.
    assert state.resolve("k2", 10.1).step is Step.FETCH
    assert state.resolve("k3", 10.2).step is Step.WAIT


def test_a_child_forked_during_a_cold_start_fetches_at_once() -> None:
    state = JWKSState(POLICY)
    assert state.resolve("k1", 0.0).step is Step.FETCH
    state.reset_after_fork()
    assert state.resolve("k1", 0.5).step is Step.FETCH


def test_same_material_in_another_order_is_not_a_new_generation() -> None:
    state = JWKSState(POLICY)
    warm(state, 0.0, "a", "b")
    assert state.start_refresh(300.0)
    assert state.finish(state.flight_id, 300.0, keyset("b", "a")) is False
    assert state.generation == 1
    assert state.fetched_at == 300.0  # but it is fresh again


# -- invariants over arbitrary histories ----------------------------------------------------------
_ops = st.lists(
    st.tuples(
        st.sampled_from(["resolve", "resolve-bad-sig", "refresh", "ok", "fail", "ok-old"]),
        st.floats(min_value=0, max_value=50, allow_nan=False),
        st.sampled_from(["k1", "k2", "k3"]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ops, ttl=st.sampled_from([1.0, 10.0, 300.0]), cooldown=st.sampled_from([0.0, 0.5, 30.0]))
def test_invariants_hold_for_any_history(
    ops: list[tuple[str, float, str]], ttl: float, cooldown: float
) -> None:
    policy = JWKSPolicy(ttl=ttl, cooldown=cooldown, max_stale=20.0, http_timeout=2.0)
    state = JWKSState(policy)
    now = 0.0
    for op, step, kid in ops:
        now += step
        if op == "resolve" or op == "resolve-bad-sig":
            before = state.fetches
            decision = state.resolve(
                kid, now, rejected_generation=state.generation if op.endswith("sig") else None
            )
            started = state.fetches - before
            # A fetch starts only when the decision says so.
            assert started == (1 if decision.step is Step.FETCH or decision.refresh else 0)
            if decision.step is Step.REJECT and decision.unavailable:
                assert decision.retry_after >= 1.0
                assert state.usable(now) is None
        elif op == "refresh":
            delay = state.refresh_delay(now)
            started_ok = state.start_refresh(now)
            # The refresher never spins: it either has work now or a positive sleep.
            assert started_ok or delay > 0
        elif op in ("ok", "fail", "ok-old") and state.flight_started_at is not None:
            flight = state.flight_id if op != "ok-old" else state.flight_id - 1
            generation, before = state.generation, state.keyset
            if op == "fail":
                state.finish(flight, now, "HTTP 500")
                assert state.keyset is before  # a failure never replaces keys
            else:
                result = keyset(kid, material=str(round(now)))
                state.finish(flight, now, result)
                # Only a result at least as new as the last recorded one is used.
                assert state.keyset is (result if flight >= state.applied_flight_id else before)
            assert state.generation >= generation
        # Keys are served only within ttl + max_stale of the last success.
        if state.usable(now) is not None:
            assert state.fetched_at is not None
            assert now - state.fetched_at <= ttl + policy.max_stale
