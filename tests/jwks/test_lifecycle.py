"""Refresh, rotation, outages over time, dead event loops, closing and exiting.

Small ``jwks_ttl``/``jwks_cooldown`` values keep these real-time tests short.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable

import httpx
import pytest

from clerkguard import AuthError, ClerkAuth, KeysUnavailable
from clerkguard.testing import LocalIssuer

from .support import Check, Verify, eventually, jwks_tasks, jwks_threads


async def test_keys_are_refreshed_in_the_background_before_the_ttl(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], check: Check
) -> None:
    auth = make_auth(jwks_ttl=1)  # refresh due after 0.8 s
    assert await check(auth, issuer.mint()) == "ok"  # starts the refresher (thread or task)
    issuer.rotate(keep_old=False)  # Clerk-style: same kid, new key
    await eventually(lambda: auth.stats.generation == 2)
    assert issuer.request_count == 2
    assert await check(auth, issuer.mint()) == "ok"
    assert issuer.request_count == 2  # the new key was already there: no token-triggered fetch
    assert auth.stats.stale is False


def test_a_refresh_due_inside_a_short_lived_event_loop_outlives_it(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    # asyncio.run() per call (or Flask's loop per async view): every loop ends right away.
    auth = make_auth(jwks_ttl=1)
    first, second = issuer.mint(), issuer.mint()  # two tokens: the second is not in the token cache
    assert asyncio.run(auth.averify(first)).user_id
    issuer.rotate(keep_old=False)
    time.sleep(0.85)  # the refresh is due
    assert asyncio.run(auth.averify(second)).user_id  # uses the current keys, starts the refresh
    asyncio.run(eventually(lambda: auth.stats.generation == 2))
    assert (auth.stats.fetches, auth.stats.failures) == (2, 0)  # not cancelled with its loop


async def test_a_key_rotated_under_the_same_kid_is_fetched_once_on_a_bad_signature(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], check: Check
) -> None:
    auth = make_auth()
    assert auth.keyring.refresh_sync()
    old_key = issuer.key
    assert await check(auth, issuer.mint()) == "ok"
    issuer.rotate(keep_old=False)
    assert await check(auth, issuer.mint()) == "ok"  # bad signature -> one refetch -> retried
    assert issuer.request_count == 2
    forged = issuer.mint(key=old_key)  # the retired key, same kid
    assert await check(auth, forged) == "401 token-invalid-signature"
    assert await check(auth, issuer.mint(key=old_key)) == "401 token-invalid-signature"
    assert issuer.request_count == 2  # inside the cooldown: no more refetches


async def test_stale_keys_keep_verifying_while_the_server_returns_500s(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], check: Check
) -> None:
    auth = make_auth(jwks_ttl=1, jwks_cooldown=0.1, jwks_max_stale=60)
    assert await check(auth, issuer.mint()) == "ok"
    issuer.set_fault(status=500)
    await eventually(lambda: auth.stats.stale and auth.stats.failures >= 1)
    for _ in range(5):
        assert await check(auth, issuer.mint()) == "ok"
    assert auth.stats.key_ids == (issuer.kid,)
    failing_since = issuer.request_count
    time.sleep(1.5)
    # Failed refreshes back off (>= 1 s apart here): no storm against a failing endpoint.
    assert issuer.request_count - failing_since <= 3
    issuer.set_fault()
    await eventually(lambda: not auth.stats.stale)
    assert auth.stats.last_error is None


async def test_after_max_stale_the_keys_are_dropped_and_requests_get_503(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], verify: Verify
) -> None:
    auth = make_auth(jwks_ttl=1, jwks_cooldown=0.1, jwks_max_stale=0.5)
    assert auth.keyring.refresh_sync()
    issuer.set_fault(status=500)
    await eventually(lambda: auth.stats.key_ids == ())  # 1.5 s after the last success
    with pytest.raises(KeysUnavailable) as info:
        await verify(auth, issuer.mint())
    assert info.value.headers()["Retry-After"].isdigit()
    issuer.set_fault()
    time.sleep(0.15)  # cold backoff: min(1 s, cooldown)
    await verify(auth, issuer.mint())
    assert auth.stats.key_ids == (issuer.kid,)


async def test_the_refresher_sleeps_while_another_fetch_hangs_and_while_failing(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], check: Check
) -> None:
    auth = make_auth(jwks_ttl=1, jwks_cooldown=0.05, http_timeout=3)
    assert auth.keyring.refresh_sync()
    assert await check(auth, issuer.mint()) == "ok"  # starts the refresher
    issuer.set_fault(delay=2.0)
    # A token-triggered refetch hangs across the moment (0.8 s) the refresh falls due.
    stranger = asyncio.ensure_future(check(auth, issuer.mint(header={"kid": "ins_new"})))
    await eventually(lambda: issuer.request_count == 2)
    before = auth.keyring._wakeups
    await asyncio.sleep(1.2)
    # Polling "is it still in flight?" every 50 ms would have woken ~8 times.
    assert auth.keyring._wakeups - before <= 2
    issuer.set_fault(status=500)
    assert await stranger == "401 jwk-kid-mismatch"
    await eventually(lambda: auth.stats.failures >= 1, timeout=5)
    before = auth.keyring._wakeups
    await asyncio.sleep(1.2)
    assert auth.keyring._wakeups - before <= 3  # one per failed attempt, a second or more apart


async def test_start_async_refresher_prefetches_and_reopens_after_aclose(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    auth.keyring.start_async_refresher()  # what the adapters' startup hooks call
    await eventually(lambda: auth.stats.key_ids == (issuer.kid,))  # before any request
    assert issuer.request_count == 1
    assert len(jwks_tasks(auth)) == 1
    await auth.aclose()
    assert jwks_tasks(auth) == []
    auth.keyring.start_async_refresher()  # a test client runs the startup hook again
    assert len(jwks_tasks(auth)) == 1
    await auth.aclose()
    assert jwks_tasks(auth) == []
    assert issuer.request_count == 1


def test_close_aborts_a_hanging_fetch_and_leaves_no_thread(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clerkguard")
    auth = make_auth(http_timeout=5)
    assert auth.keyring.refresh_sync()
    assert auth.verify(issuer.mint()).user_id  # starts the refresher thread
    issuer.set_fault(delay=5)
    outcome: list[str] = []
    waiter = start_thread(lambda: outcome.append(verify_summary(auth, issuer.mint(header={"kid": "x"}))))
    asyncio.run(eventually(lambda: issuer.request_count == 2))
    assert sorted(n.rsplit("-", 1)[1] for n in jwks_threads(auth)) == ["fetch", "refresher"]

    started = time.monotonic()
    auth.close()
    assert time.monotonic() - started < 2.0  # the hanging fetch was aborted, not waited out (5 s)
    assert jwks_threads(auth) == []
    waiter.join(2.0)
    assert outcome == ["401 jwk-kid-mismatch"]  # the waiter was released with the keys it had
    assert auth.stats.last_error == "aborted (closing)"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # closing is no outage

    issuer.set_fault()
    assert auth.verify(issuer.mint()).user_id  # still verifies after close, lazily
    assert jwks_threads(auth) == []  # ...without restarting the refresher


async def test_aclose_cancels_fetch_tasks_and_leaves_no_task(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(http_timeout=5)
    assert auth.keyring.refresh_sync()
    assert (await auth.averify(issuer.mint())).user_id  # starts the refresher task
    issuer.set_fault(delay=5)
    waiter = asyncio.ensure_future(auth.averify(issuer.mint(header={"kid": "x"})))
    await eventually(lambda: issuer.request_count == 2)
    assert sorted(n.rsplit("-", 1)[1] for n in jwks_tasks(auth)) == ["fetch", "refresher"]

    await auth.aclose()
    assert jwks_tasks(auth) == []
    assert jwks_threads(auth) == []
    with pytest.raises(AuthError, match="jwk-kid-mismatch"):
        await asyncio.wait_for(waiter, 2.0)
    assert auth.stats.last_error == "cancelled"


async def test_cancelling_one_waiter_does_not_cancel_the_shared_fetch(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    issuer.set_fault(delay=0.5)
    token = issuer.mint(user_id="user_patient")
    impatient = asyncio.ensure_future(auth.averify(token))
    patient = asyncio.ensure_future(auth.averify(token))
    await eventually(lambda: issuer.request_count == 1)
    impatient.cancel()
    assert (await patient).user_id == "user_patient"
    assert impatient.cancelled()
    assert issuer.request_count == 1
    await auth.aclose()


@pytest.mark.parametrize("waiter", ["thread", "other-loop"])
def test_a_fetch_whose_event_loop_stopped_is_abandoned(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], waiter: str
) -> None:
    auth = make_auth(http_timeout=5, jwks_cooldown=0.2)
    issuer.set_fault(delay=1.5)
    token = issuer.mint(user_id="user_survivor")
    dead = asyncio.new_event_loop()

    async def start_fetch() -> asyncio.Future[object]:
        pending = asyncio.ensure_future(auth.averify(token))
        await eventually(lambda: issuer.request_count == 1)
        return pending

    # The loop stops with its fetch task pending (a worker whose loop was torn down).
    pending = dead.run_until_complete(start_fetch())
    try:
        started = time.monotonic()
        join_the_dead_fetch: Callable[[], object] = (
            (lambda: auth.verify(token)) if waiter == "thread" else (lambda: asyncio.run(auth.averify(token)))
        )
        with pytest.raises(KeysUnavailable):
            join_the_dead_fetch()
        assert time.monotonic() - started < 5 + 1.0  # bounded by http_timeout at worst
        # ...and in fact released because the loop was seen dead, not by the timeout:
        assert auth.stats.last_error == "event loop stopped during the fetch"

        issuer.set_fault()
        time.sleep(0.25)  # the cold backoff
        assert auth.verify(token).user_id == "user_survivor"  # a fresh fetch, in a thread
        assert issuer.request_count == 2
    finally:
        pending.cancel()
        for task in asyncio.all_tasks(dead):
            task.cancel()
        dead.run_until_complete(asyncio.gather(*asyncio.all_tasks(dead), return_exceptions=True))
        dead.close()


class Boom(BaseException):
    """Something no ``except Exception`` catches (a fault no server can cause)."""


class BoomTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise Boom

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise Boom


async def test_a_fetch_dying_of_a_base_exception_still_releases_its_waiters(
    issuer: LocalIssuer, check: Check
) -> None:
    auth = issuer.auth(transport=BoomTransport(), http_timeout=5)
    try:
        started = time.monotonic()
        assert await check(auth, issuer.mint()) == "503 jwks-unavailable"
        assert time.monotonic() - started < 5  # released by the landing, not by the timeout
        assert auth.stats.last_error == "unexpected error (Boom)"
    finally:
        await auth.aclose()


def test_stats_report_fetches_failures_last_success_and_key_ids(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(jwks_cooldown=0)
    empty = auth.stats
    assert (empty.fetches, empty.failures, empty.last_success, empty.key_ids, empty.stale) == (
        0,
        0,
        None,
        (),
        True,
    )
    before = time.time()
    assert auth.keyring.refresh_sync()
    issuer.set_fault(status=503)
    with pytest.raises(AuthError, match="jwk-kid-mismatch"):
        auth.verify(issuer.mint(header={"kid": "ins_other"}))
    stats = auth.stats
    assert (stats.fetches, stats.failures, stats.last_error) == (2, 1, "HTTP 503")
    assert stats.key_ids == (issuer.kid,)
    assert stats.last_success is not None
    assert before <= stats.last_success <= time.time()
    assert stats.generation == 1
    assert stats.stale is False


def start_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def verify_summary(auth: ClerkAuth, token: str) -> str:
    try:
        return auth.verify(token).user_id
    except AuthError as exc:
        return f"{exc.status} {exc.reason}"


def test_a_refresher_never_keeps_the_interpreter_from_exiting(issuer: LocalIssuer) -> None:
    script = textwrap.dedent(
        """
        import sys, threading
        from clerkguard import ClerkAuth
        uri, iss, token, stranger = sys.argv[1:5]
        auth = ClerkAuth(jwks_uri=uri, issuer=iss, env={}, http_timeout=60, jwks_ttl=1, jwks_cooldown=0)
        auth.verify(token)                      # warm: the refresher thread is running
        print("warm", flush=True)
        sys.stdin.readline()                    # the server hangs from now on
        threading.Thread(target=auth.verify, args=(stranger,), daemon=True).start()
        sys.stdin.readline()                    # its refetch hangs: leave, without close()
        """
    )
    args = [issuer.jwks_uri, issuer.issuer, issuer.mint(), issuer.mint(header={"kid": "ins_new"})]
    with subprocess.Popen(
        [sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdin is not None
            assert proc.stdout.readline().strip() == "warm"
            issuer.set_fault(delay=30)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            asyncio.run(eventually(lambda: issuer.request_count == 2))  # the refetch hangs on the server
            proc.stdin.write("exit\n")
            proc.stdin.flush()
            assert proc.wait(timeout=15) == 0  # not 60 s (http_timeout), not forever
        finally:
            proc.kill()


def _refresher_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("clerkguard-jwks-")}


def test_dropped_instances_never_closed_leave_no_refresher_thread(issuer: LocalIssuer) -> None:
    baseline = _refresher_threads()
    instances = [issuer.auth(jwks_ttl=3600) for _ in range(30)]
    for auth in instances:
        assert auth.verify(issuer.mint()).user_id  # starts this instance's refresher thread
    assert len(_refresher_threads() - baseline) == 30
    refs = [(weakref.ref(auth), weakref.ref(auth.keyring)) for auth in instances]
    del auth, instances
    gc.collect()
    # The threads hold no strong reference: instances and keyrings are collected...
    assert all(a() is None and k() is None for a, k in refs)
    # ...and each refresher, woken by its keyring's death, ends on its own.
    asyncio.run(eventually(lambda: not (_refresher_threads() - baseline)))


async def test_a_dropped_instance_lets_its_async_refresher_task_end(issuer: LocalIssuer) -> None:
    auth = issuer.auth(jwks_ttl=3600)
    assert (await auth.averify(issuer.mint())).user_id  # starts the refresher task
    name = auth.keyring.name
    task = next(t for t in asyncio.all_tasks() if t.get_name() == f"{name}-refresher")
    ref = weakref.ref(auth)
    del auth
    gc.collect()
    assert ref() is None
    await asyncio.wait_for(task, timeout=10)  # it ends without anyone cancelling it
    assert not task.cancelled()
