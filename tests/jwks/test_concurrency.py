"""Single flight under load, floods, and requests that never wait for a refresh.

Real loopback JWKS server; request counts are read on the server side.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from clerkguard import AuthError, ClerkAuth
from clerkguard.testing import SESSION_CATEGORY, LocalIssuer, b64url

from .support import eventually

CROWD = 500


def run_threads(count: int, target: Callable[[], str]) -> tuple[list[threading.Thread], list[str]]:
    """Start ``count`` threads running ``target``; results are appended as they finish."""
    results: list[str] = []
    lock = threading.Lock()

    def main() -> None:
        try:
            outcome = target()
        except AuthError as exc:
            outcome = f"{exc.status} {exc.reason}"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=main, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def join(threads: list[threading.Thread], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), "a verifying thread hung"


def summary_sync(auth: ClerkAuth, token: str) -> str:
    try:
        return auth.verify(token).user_id
    except AuthError as exc:
        return f"{exc.status} {exc.reason}"


async def summary(auth: ClerkAuth, token: str) -> str:
    try:
        return (await auth.averify(token)).user_id
    except AuthError as exc:
        return f"{exc.status} {exc.reason}"


def test_500_threads_on_a_cold_cache_make_one_fetch(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(http_timeout=20)
    token = issuer.mint(user_id="user_threads")
    issuer.set_fault(delay=0.5)  # keep the one fetch in flight while the crowd arrives
    barrier = threading.Barrier(CROWD)

    def verify() -> str:
        barrier.wait()
        return auth.verify(token).user_id

    threads, results = run_threads(CROWD, verify)
    join(threads)
    assert results == ["user_threads"] * CROWD
    assert issuer.request_count == 1
    assert auth.stats.fetches == 1


async def test_500_tasks_on_a_cold_cache_make_one_fetch(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(http_timeout=20)
    token = issuer.mint(user_id="user_tasks")
    issuer.set_fault(delay=0.5)
    results = await asyncio.gather(*(summary(auth, token) for _ in range(CROWD)))
    assert results == ["user_tasks"] * CROWD
    assert issuer.request_count == 1
    assert auth.stats.fetches == 1
    await auth.aclose()


async def test_500_threads_and_500_tasks_at_once_make_one_fetch(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(http_timeout=20)
    token = issuer.mint(user_id="user_both")
    issuer.set_fault(delay=1.0)
    go = threading.Event()

    def verify() -> str:
        go.wait()
        return auth.verify(token).user_id

    threads, thread_results = run_threads(CROWD, verify)
    go.set()
    task_results = await asyncio.gather(*(summary(auth, token) for _ in range(CROWD)))
    await asyncio.to_thread(join, threads)
    assert thread_results == ["user_both"] * CROWD
    assert task_results == ["user_both"] * CROWD
    assert issuer.request_count == 1
    await auth.aclose()


def random_kid_tokens(issuer: LocalIssuer, count: int) -> list[str]:
    """Tokens whose ``kid`` nobody published (a flood never reaches the signature check)."""
    _, payload, signature = issuer.mint().split(".")
    rng = random.Random(3)
    tokens = []
    for _ in range(count):
        header = {
            "alg": "RS256",
            "cat": SESSION_CATEGORY,
            "kid": f"ins_{rng.getrandbits(96):x}",
            "typ": "JWT",
        }
        tokens.append(f"{b64url(json.dumps(header).encode())}.{payload}.{signature}")
    return tokens


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_10000_random_kids_make_at_most_one_fetch_per_cooldown(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], mode: str
) -> None:
    cooldown = 1.0
    auth = make_auth(jwks_cooldown=cooldown)
    assert auth.keyring.refresh_sync()
    tokens = random_kid_tokens(issuer, 10_000)
    issuer.reset_count()
    started = time.monotonic()
    if mode == "sync":

        def flood() -> set[str]:
            outcomes = set()
            for token in tokens:
                try:
                    auth.verify(token)
                except AuthError as exc:
                    outcomes.add(exc.reason)
            return outcomes

        reasons = await asyncio.to_thread(flood)
    else:
        outcomes = []
        for batch in range(0, len(tokens), 1000):  # 1000 concurrent tasks at a time
            outcomes += await asyncio.gather(*(summary(auth, t) for t in tokens[batch : batch + 1000]))
        reasons = {o.split(" ", 1)[1] for o in outcomes}
    elapsed = time.monotonic() - started
    assert reasons == {"jwk-kid-mismatch"}
    assert 1 <= issuer.request_count <= 1 + int(elapsed // cooldown)
    # The good key still verifies after the flood.
    assert auth.verify(issuer.mint(user_id="user_real")).user_id == "user_real"
    await auth.aclose()


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[int(len(ordered) * 0.99) - 1]


def timed_sync(auth: ClerkAuth, token: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        auth.verify(token)
        latencies.append(time.perf_counter() - started)
    return latencies


async def timed_async(auth: ClerkAuth, token: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        await auth.averify(token)
        latencies.append(time.perf_counter() - started)
    return latencies


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("trigger", ["unknown-kid", "ttl-refresh"])
async def test_cached_key_verification_stays_fast_while_a_slow_refetch_is_in_flight(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], mode: str, trigger: str
) -> None:
    # token_cache_size=0: every call below is a full verification with the cached key.
    ttl = 1 if trigger == "ttl-refresh" else 300
    auth = make_auth(http_timeout=5, jwks_ttl=ttl, token_cache_size=0)
    assert auth.keyring.refresh_sync()  # warm, leaving the unknown-kid cooldown unused
    token = issuer.mint(user_id="user_fast")
    if mode == "sync":
        await asyncio.to_thread(auth.verify, token)  # starts the refresher thread
    else:
        await auth.averify(token)  # starts the refresher task
    warm = auth.stats
    issuer.set_fault(delay=2.0)
    background: asyncio.Future[str] | None = None
    if trigger == "unknown-kid":
        stranger = issuer.mint(header={"kid": "ins_rotated"})
        if mode == "sync":
            background = asyncio.ensure_future(asyncio.to_thread(summary_sync, auth, stranger))
        else:
            background = asyncio.ensure_future(summary(auth, stranger))
    await eventually(lambda: issuer.request_count == 2)  # the slow refetch has started
    if mode == "sync":
        latencies = await asyncio.to_thread(timed_sync, auth, token, 200)
    else:
        latencies = await timed_async(auth, token, 200)
    during = auth.stats
    # Nothing landed while we measured: the refetch was in flight throughout.
    assert (during.fetches, during.failures, during.last_success) == (2, 0, warm.last_success)
    assert p99(latencies) < 0.05
    if background is not None:
        assert await background == "401 jwk-kid-mismatch"  # the refetch did not have it either
    assert issuer.request_count == 2
    await auth.aclose()


async def test_event_loop_stays_responsive_while_the_jwks_server_sleeps(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(http_timeout=8)

    async def app(scope: dict[str, object], receive: object, send: Callable[..., object]) -> None:
        """A plain ASGI app: 200 with the user id, or the AuthError's status."""
        assert scope["type"] == "http"
        headers = dict(scope["headers"])  # type: ignore[call-overload]
        token = headers.get(b"authorization", b"")[len(b"Bearer ") :].decode()
        try:
            status, body = 200, (await auth.averify(token)).user_id
        except AuthError as exc:
            status, body = exc.status, exc.reason
        await send({"type": "http.response.start", "status": status, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": body.encode()})  # type: ignore[operator]

    loop = asyncio.get_running_loop()
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - before - 0.005)

    issuer.set_fault(delay=5.0)
    token = issuer.mint(user_id="user_loop")
    tick = asyncio.ensure_future(ticker())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        responses = await asyncio.gather(
            *(client.get("/", headers={"Authorization": f"Bearer {token}"}) for _ in range(50))
        )
    stop.set()
    await tick
    assert [(r.status_code, r.text) for r in responses] == [(200, "user_loop")] * 50
    assert issuer.request_count == 1
    assert len(lags) > 100  # the ticker really ran during the 5 s wait
    assert max(lags) < 0.05
    await auth.aclose()
