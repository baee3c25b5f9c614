"""The I/O shell around `JWKSState`.

One `Keyring` per [`ClerkAuth`][clerkguard.ClerkAuth]. Every decision is the
state machine's; this module only runs what it asks for:

* **One fetch at a time.** A fetch is a `Flight`,
  joined by threads and tasks (on any number of loops) alike, so a cold
  start hit by both at once makes one request. The lock is held only around
  state-machine calls, never during I/O. The request itself is
  `clerkguard._http`'s hardened one.
* **Bounded waits.** A waiter gives up after ``http_timeout`` (503), however
  the fetch behaves, and abandons a fetch whose event loop died
  (`wait_sync` / `wait_async`).
* **The flight always lands.** Every fetch path ends in `Keyring._finish`
  through ``finally`` (threads), ``finally`` plus a done-callback (tasks: a
  task cancelled before its first step never enters its ``try``), so waiters
  are released and the state leaves "in flight" whatever happens.
* **Background refresh.** A daemon thread for sync users, a task for async
  users, started lazily on first use (and by adapters' startup hooks through
  `Keyring.start_async_refresher`). It sleeps exactly until the state
  machine says a refresh is due, so a cold or failing state never spins. A
  refresh that falls due with no refresher to run it is started by the next
  request in a thread, even from async code: a task would die with a
  short-lived loop (``asyncio.run()`` per call) and leave the keys to age out.
* **Processes.** ``os.register_at_fork`` (with a pid check as a backstop)
  gives a forked child fresh locks and no flight or refresher of its parent,
  but keeps the parent's keys: a ``gunicorn --preload`` worker starts warm.
* **Closing.** `Keyring.close` / `Keyring.aclose` abort in-flight
  fetches (shutting their sockets down), stop refreshers and wait for them:
  no ``clerkguard-jwks-*`` thread or task remains.

Failures are logged under ``clerkguard.jwks``: one WARNING per
``_WARN_EVERY`` seconds at most, with a short fixed reason, never a response
body, header or secret.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._core.jwks import Decision, JWKSPolicy, JWKSState, Step
from ._core.keys import KeySet
from ._flight import Flight, resolve_future, wait_async, wait_sync
from ._http import FetchControl, FetchError, fetch_jwks_async, fetch_jwks_sync
from .config import safe_url as _safe_url

if TYPE_CHECKING:
    import asyncio

    from joserfc.jwk import RSAKey

# asyncio is imported by the methods that run on an event loop (it is loaded
# then), so that a sync program never loads it.

__all__ = ["JWKSStats", "Keyring"]

logger = logging.getLogger("clerkguard.jwks")

#: Minimum seconds between two WARNING logs about a failing endpoint (per keyring).
_WARN_EVERY = 300.0
#: Longest single sleep of a refresher (it recomputes after waking).
_MAX_SLEEP = 3600.0

_serials = itertools.count(1)


@dataclass(frozen=True)
class JWKSStats:
    """A snapshot of the key cache, for health checks and dashboards.

    Attributes:
        fetches: Fetches started since construction.
        failures: Fetches that failed.
        last_success: Wall-clock time (Unix seconds) of the last good fetch.
        last_error: Reason of the most recent failure, ``None`` after a success.
        key_ids: The usable key ids, sorted (empty once keys are older than
            ``jwks_ttl + jwks_max_stale``).
        generation: Bumped each time the key material changes.
        stale: True when there are no keys or they are older than ``jwks_ttl``.
    """

    fetches: int
    failures: int
    last_success: float | None
    last_error: str | None
    key_ids: tuple[str, ...]
    generation: int
    stale: bool


@dataclass(frozen=True, slots=True)
class _Failure:
    """A failed fetch: the reason recorded, and whether it deserves a WARNING."""

    reason: str
    #: False when the endpoint is not to blame (cancelled, closing, loop died).
    loud: bool = True


# -- fork safety ---------------------------------------------------------------------
_registry_lock = threading.Lock()
_keyrings: weakref.WeakSet[Keyring] = weakref.WeakSet()
_held: list[Keyring] = []


def _before_fork() -> None:
    # Hold every keyring lock across fork() so no child copies a half-updated state.
    _registry_lock.acquire()
    _held[:] = list(_keyrings)
    for keyring in _held:
        keyring._lock.acquire()


def _after_fork_in_parent() -> None:
    for keyring in _held:
        keyring._lock.release()
    _held.clear()
    _registry_lock.release()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for keyring in _held:
        keyring._reset_after_fork()
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


class Keyring:
    """Keys for one ClerkAuth: a static PEM key, or a remote JWKS with caching.

    Args:
        url: The JWKS URL (``None`` with a static key).
        headers: Extra request headers (the Backend API's ``Authorization``).
        policy: TTL, cooldown, max-stale and timeout.
        static_key: The PEM key of ``jwt_key``: no fetching at all.
        transport: An ``httpx`` transport used instead of the network (tests).
        on_change: Called (outside the lock) when the key material changes.
    """

    def __init__(
        self,
        *,
        url: str | None,
        headers: Mapping[str, str],
        policy: JWKSPolicy,
        static_key: RSAKey | None = None,
        transport: Any = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self._headers = dict(headers)
        self.policy = policy
        self.static_key = static_key
        self._transport = transport
        self._on_change = on_change
        self._state = JWKSState(policy)
        self.name = f"clerkguard-jwks-{next(_serials)}"
        """Prefix of the names of this keyring's threads and tasks."""
        self._closed = False
        self._last_warning = float("-inf")
        self._last_success_wall: float | None = None
        #: Refresher loop iterations (tests assert that a refresher sleeps).
        self._wakeups = 0
        self._init_runtime()
        with _registry_lock:
            _keyrings.add(self)

    def _init_runtime(self) -> None:
        """Per-process machinery: what a forked child must not inherit."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flight: Flight | None = None
        self._flights: set[Flight] = set()
        self._threads: set[threading.Thread] = set()
        self._refresher_thread: threading.Thread | None = None
        self._refresher_task: asyncio.Task[None] | None = None
        # Lock-free fast path for the common case (known kid, no refresh due):
        # (valid-until monotonic time, kid -> ready USE decision). Rebuilt under
        # the lock by _decide, dropped whenever a fetch is recorded.
        self._hot: tuple[float, dict[str, Decision]] | None = None

    # -- public-ish ------------------------------------------------------------
    def usable_until(self) -> float:
        """Monotonic time after which the current keys may no longer be used.

        ``fetched_at + jwks_ttl + jwks_max_stale``; infinite for a static key,
        minus infinity before the first fetch. Read without the lock: a torn
        read can only be a moment stale, and callers recheck through the lock.
        """
        if self.static_key is not None:
            return float("inf")
        fetched_at = self._state.fetched_at
        if fetched_at is None:
            return float("-inf")
        return fetched_at + self.policy.ttl + self.policy.max_stale

    @property
    def generation(self) -> int:
        """Current key generation (static keys: always 0)."""
        return self._state.generation

    def stats(self) -> JWKSStats:
        """A consistent snapshot of the cache."""
        with self._lock:
            state = self._state
            now = time.monotonic()
            keyset = state.usable(now)
            return JWKSStats(
                fetches=state.fetches,
                failures=state.failures,
                last_success=self._last_success_wall,
                last_error=state.last_error,
                key_ids=tuple(sorted(keyset.keys)) if keyset else (),
                generation=state.generation,
                stale=self.static_key is None and state.stale(now),
            )

    def keyset(self) -> KeySet | None:
        """The current key set, if any (for the CLI and health checks)."""
        return self._state.keyset

    # -- resolving a key -------------------------------------------------------
    def _new_flight(self, loop: asyncio.AbstractEventLoop | None) -> Flight:
        # Lock held: the state machine has just recorded the start of a fetch.
        flight = Flight(self._state.flight_id, loop)
        self._flight = flight
        self._flights.add(flight)
        return flight

    def _decide(
        self, kid: str, rejected: int | None, waited: bool, loop: asyncio.AbstractEventLoop | None
    ) -> tuple[Decision, Flight | None]:
        self._reap_orphan()
        with self._lock:
            now = time.monotonic()
            decision = self._state.resolve(kid, now, rejected_generation=rejected, waited=waited)
            if decision.step is Step.USE and not decision.refresh and rejected is None:
                self._warm_hot_path(now)
            if decision.step is Step.FETCH:
                return decision, self._new_flight(loop)
            if decision.refresh:  # always fetched in a thread, see key_async
                return decision, self._new_flight(None)
            if decision.step is Step.WAIT:
                return decision, self._flight
            return decision, None

    def _warm_hot_path(self, now: float) -> None:
        """Publish ready decisions until the next refresh is due (lock held)."""
        state = self._state
        keyset = state.usable(now)
        if keyset is None or state.fetched_at is None:
            self._hot = None
            return
        until = min(state.next_refresh_at, state.fetched_at + self.policy.ttl + self.policy.max_stale)
        hot = self._hot
        if hot is not None and hot[0] == until:
            return
        generation = state.generation
        table = {kid: Decision(Step.USE, key=key, generation=generation) for kid, key in keyset.keys.items()}
        self._hot = (until, table)

    def _hot_decision(self, kid: str) -> Decision | None:
        """The ready decision for ``kid`` when nothing needs the lock, else None."""
        hot = self._hot
        if hot is None or time.monotonic() >= hot[0]:
            return None
        return hot[1].get(kid)

    def key_sync(self, kid: str, rejected: int | None = None) -> Decision:
        """Resolve ``kid`` from a thread; waits at most ``http_timeout``."""
        if self.static_key is not None:
            return self._static(rejected)
        if rejected is None:
            ready = self._hot_decision(kid)
            if ready is not None:
                return ready
        self._check_pid()
        deadline: float | None = None
        waited = False
        while True:
            decision, flight = self._decide(kid, rejected, waited, None)
            if decision.step is Step.USE:
                if flight is not None:  # a refresh is due: in the background
                    self._start_thread_fetch(flight)
                self._ensure_thread_refresher()
                return decision
            if decision.step is Step.REJECT:
                return decision
            if flight is None:
                return self._timed_out()
            if decision.step is Step.FETCH:
                self._start_thread_fetch(flight)
            if deadline is None:
                deadline = time.monotonic() + self.policy.http_timeout
            # Landed or not, ask once more without waiting: a fetch still in
            # flight after http_timeout means 503 on a cold cache, and on a
            # warm one the same answer as a failed refetch.
            self._wait_sync(flight, deadline)
            waited = True

    async def key_async(self, kid: str, rejected: int | None = None) -> Decision:
        """Resolve ``kid`` from a coroutine; never blocks the event loop."""
        import asyncio

        if self.static_key is not None:
            return self._static(rejected)
        if rejected is None:
            ready = self._hot_decision(kid)
            if ready is not None:
                return ready
        self._check_pid()
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        waited = False
        while True:
            decision, flight = self._decide(kid, rejected, waited, loop)
            if decision.step is Step.USE:
                if flight is not None:
                    # A refresh nobody waits for goes to a thread, not a task: it must
                    # outlive this loop (asyncio.run() per call, Flask async views),
                    # whose end would cancel it and leave the keys to age out.
                    self._start_thread_fetch(flight)
                self._ensure_task_refresher(loop)
                return decision
            if decision.step is Step.REJECT:
                return decision
            if flight is None:
                return self._timed_out()
            if decision.step is Step.FETCH:
                self._start_task_fetch(flight)
            if deadline is None:
                deadline = time.monotonic() + self.policy.http_timeout
            await self._wait_async(flight, deadline)
            waited = True

    def _land_orphan(self, flight: Flight) -> None:
        self._finish(flight, _Failure("event loop stopped during the fetch", loud=False))

    def _wait_sync(self, flight: Flight, deadline: float) -> bool:
        return wait_sync(flight, deadline, self._land_orphan)

    async def _wait_async(self, flight: Flight, deadline: float) -> bool:
        return await wait_async(flight, deadline, self._land_orphan)

    def _static(self, rejected: int | None) -> Decision:
        if rejected is not None:
            return Decision(Step.REJECT)
        return Decision(Step.USE, key=self.static_key)

    def _timed_out(self) -> Decision:
        return Decision(Step.REJECT, unavailable=True, retry_after=1.0)

    def _reap_orphan(self) -> None:
        flight = self._flight
        if flight is not None and flight.orphaned():
            self._finish(flight, _Failure("event loop stopped during the fetch", loud=False))

    # -- fetching ----------------------------------------------------------------
    def _finish(self, flight: Flight, result: KeySet | _Failure) -> None:
        """Record the outcome of ``flight`` once, then release its waiters."""
        try:
            self._record(flight, result)
        finally:
            flight.done()
            self._wake.set()

    def _record(self, flight: Flight, result: KeySet | _Failure) -> None:
        now = time.monotonic()
        with self._lock:
            if flight.finished:
                return
            flight.finished = True
            self._hot = None  # keys may have changed: back to the locked path
            self._flights.discard(flight)
            if self._flight is flight:
                self._flight = None
            state = self._state
            cached: KeySet | None = None
            failures_before = state.consecutive_failures
            outcome = result.reason if isinstance(result, _Failure) else result
            changed = state.finish(flight.flight_id, now, outcome)
            if state.applied_flight_id != flight.flight_id:
                return  # superseded by a newer fetch: nothing to report
            loud = False
            if isinstance(result, _Failure):
                loud = result.loud and now - self._last_warning >= _WARN_EVERY
                if loud:
                    self._last_warning = now
                cached = state.usable(now)
            else:
                self._last_success_wall = time.time()
        url = _safe_url(self.url or "")
        if isinstance(result, _Failure):
            if cached is not None:
                keeping = f"keeping {len(cached.keys)} cached key(s)"
            else:
                keeping = "no usable keys: requests get 503"
            logger.log(
                logging.WARNING if loud else logging.DEBUG,
                "JWKS fetch from %s failed: %s; %s",
                url,
                result.reason,
                keeping,
            )
            return
        if failures_before:
            logger.info("JWKS fetch from %s succeeded after %d failed attempt(s)", url, failures_before)
        if changed:
            logger.info(
                "JWKS keys loaded from %s: %s", url, ", ".join(repr(k[:64]) for k in sorted(result.keys))
            )
            if result.skipped:
                logger.info(
                    "JWKS from %s: %d key(s) skipped: %s",
                    url,
                    len(result.skipped),
                    "; ".join(f"{(s.kid or '?')[:64]!r}: {s.reason}" for s in result.skipped),
                )
            if self._on_change is not None:
                self._on_change()

    def _run_sync_fetch(self, flight: Flight) -> None:
        """Fetch in this thread (a fetch thread or the refresher) and land ``flight``."""
        assert self.url is not None
        control = flight.control or FetchControl(self.policy.http_timeout)
        flight.control = control
        result: KeySet | _Failure = _Failure("interrupted", loud=False)
        try:
            result = fetch_jwks_sync(self.url, self._headers, control, self._transport)
        except FetchError as exc:
            result = _Failure(str(exc), loud=not control.aborted)
        except BaseException as exc:  # never leave waiters hanging
            result = _Failure(f"unexpected error ({type(exc).__name__})")
        finally:
            self._finish(flight, result)

    def _thread_main(self, flight: Flight) -> None:
        try:
            self._run_sync_fetch(flight)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _start_thread_fetch(self, flight: Flight) -> None:
        # The control exists before the thread starts, so close() can abort it.
        flight.control = FetchControl(self.policy.http_timeout)
        thread = threading.Thread(
            target=self._thread_main, args=(flight,), name=f"{self.name}-fetch", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down, or out of threads
            with self._lock:
                self._threads.discard(thread)
            self._finish(flight, _Failure("could not start a fetch thread"))

    async def _task_main(self, flight: Flight) -> None:
        import asyncio

        assert self.url is not None
        result: KeySet | _Failure = _Failure("cancelled", loud=False)
        try:
            result = await asyncio.wait_for(
                fetch_jwks_async(self.url, self._headers, self.policy.http_timeout, self._transport),
                self.policy.http_timeout,
            )
        except FetchError as exc:
            result = _Failure(str(exc))
        except asyncio.TimeoutError:
            result = _Failure("timed out")
        except Exception as exc:
            result = _Failure(f"unexpected error ({type(exc).__name__})")
        except asyncio.CancelledError:
            raise  # lands as the default: cancelled
        except BaseException as exc:
            result = _Failure(f"unexpected error ({type(exc).__name__})")
            raise
        finally:
            self._finish(flight, result)

    def _start_task_fetch(self, flight: Flight) -> None:
        loop = flight.loop
        assert loop is not None
        coro = self._task_main(flight)
        try:
            task = loop.create_task(coro, name=f"{self.name}-fetch")
        except RuntimeError:
            coro.close()
            self._finish(flight, _Failure("could not start a fetch task", loud=False))
            return
        # The flight (held in self._flights until it lands) keeps the task alive;
        # the callback lands a task cancelled before it ever ran.
        flight.task = task
        task.add_done_callback(lambda done: self._task_done(flight, done))

    def _task_done(self, flight: Flight, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: a BaseException was already landed as a failure
        self._finish(flight, _Failure("cancelled", loud=False))

    # -- background refresh --------------------------------------------------------
    def _start_refresh(self, loop: asyncio.AbstractEventLoop | None) -> Flight | None:
        self._reap_orphan()
        with self._lock:
            if not self._state.start_refresh(time.monotonic()):
                return None
            return self._new_flight(loop)

    def _refresh_plan(self) -> tuple[float, Flight | None]:
        """How long a refresher may sleep, and the flight worth waking up for."""
        self._reap_orphan()
        with self._lock:
            now = time.monotonic()
            delay = self._state.refresh_delay(now)
            flight = self._flight if self._state.in_flight(now) else None
        return min(delay, _MAX_SLEEP), flight

    def refresh_sync(self) -> bool:
        """Fetch now in this thread if a refresh is due (warm-up, CLI, refresher).

        Returns:
            True when a fetch ran (successful or not).
        """
        if self.url is None:
            return False
        self._check_pid()
        flight = self._start_refresh(None)
        if flight is None:
            return False
        self._run_sync_fetch(flight)
        return True

    async def refresh_async(self) -> bool:
        """Fetch now from this event loop if a refresh is due.

        Returns:
            True when a fetch ran (successful or not).
        """
        import asyncio

        if self.url is None:
            return False
        self._check_pid()
        flight = self._start_refresh(asyncio.get_running_loop())
        if flight is None:
            return False
        self._start_task_fetch(flight)
        if flight.task is not None:
            # asyncio.wait: a cancelled fetch (close) is no error here, and
            # cancelling this caller does not cancel the fetch (aclose does).
            await asyncio.wait({flight.task})
        return True

    def _ensure_thread_refresher(self) -> None:
        if self._refresher_thread is not None or self._closed or self.url is None:
            return
        with self._lock:
            if self._refresher_thread is not None or self._is_closed():
                return
            wake = self._wake
            # A weak reference: the refresher must not keep a dropped (never
            # closed) keyring alive, and it wakes up and ends when it is collected.
            ref = weakref.ref(self, lambda _: wake.set())
            thread = threading.Thread(
                target=_refresher_main, args=(ref, wake), name=f"{self.name}-refresher", daemon=True
            )
            self._refresher_thread = thread
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:
            with self._lock:
                self._refresher_thread = None
                self._threads.discard(thread)

    def _ensure_task_refresher(self, loop: asyncio.AbstractEventLoop) -> None:
        task = self._refresher_task
        if self._closed or self.url is None:
            return
        if task is not None and not task.done() and task.get_loop().is_running():
            return
        with self._lock:
            if self._refresher_task is not task:
                return  # another caller just started one
            stop: asyncio.Future[None] = loop.create_future()

            def wake(_: object) -> None:
                try:
                    loop.call_soon_threadsafe(resolve_future, stop)
                except RuntimeError:  # that loop is closed: the task is gone with it
                    pass

            ref = weakref.ref(self, wake)
            self._refresher_task = loop.create_task(_refresher_coro(ref, stop), name=f"{self.name}-refresher")

    def start_async_refresher(self) -> None:
        """Start the async refresher in the running loop (adapters' startup hooks).

        An explicit start also reopens a keyring stopped by `close`
        (test clients run an app's startup and shutdown hooks repeatedly).
        """
        import asyncio

        if self.url is None:
            return
        self._check_pid()
        self._closed = False
        self._ensure_task_refresher(asyncio.get_running_loop())

    # -- lifecycle -------------------------------------------------------------------
    def _is_closed(self) -> bool:
        # A method, not an attribute read: other threads flip the flag (and
        # mypy would otherwise narrow it to a constant inside a loop).
        return self._closed

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # forked without register_at_fork (or it raced)
            self._reset_after_fork()

    def _reset_after_fork(self) -> None:
        # The parent's threads, tasks and flights do not exist here; its keys do.
        self._init_runtime()
        self._state.reset_after_fork()

    def _stop(self) -> list[asyncio.Task[None]]:
        """Mark closed, abort every fetch; return the tasks still to be awaited."""
        self._closed = True
        self._wake.set()
        with self._lock:
            flights = list(self._flights)
            refresher, self._refresher_task = self._refresher_task, None
        tasks = [f.task for f in flights if f.task is not None and not f.task.done()]
        for flight in flights:
            flight.cancel()
            if flight.orphaned():  # its loop is gone: nobody else will ever land it
                self._finish(flight, _Failure("event loop stopped during the fetch", loud=False))
        if refresher is not None and not refresher.done():
            try:
                refresher.get_loop().call_soon_threadsafe(refresher.cancel)
            except RuntimeError:
                pass
            tasks.append(refresher)
        return tasks

    def _live_threads(self) -> list[threading.Thread]:
        current = threading.current_thread()
        with self._lock:
            return [t for t in self._threads if t is not current]

    def close(self) -> None:
        """Stop refreshers and abort in-flight fetches; idempotent.

        Waits (at most ``http_timeout`` + 1 s; aborted fetches stop at once)
        until no thread of this keyring is left. Tasks on other loops are
        cancelled; use `aclose` from async code to also await them.
        Verification keeps working afterwards, fetching lazily.
        """
        self._stop()
        deadline = time.monotonic() + self.policy.http_timeout + 1.0
        while (threads := self._live_threads()) and time.monotonic() < deadline:
            for thread in threads:
                try:
                    thread.join(max(0.0, deadline - time.monotonic()))
                except RuntimeError:  # registered but not started yet
                    time.sleep(0.005)

    async def aclose(self) -> None:
        """Async `close`: also awaits this loop's cancelled tasks; never blocks the loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        tasks = [t for t in self._stop() if t.get_loop() is loop]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        deadline = time.monotonic() + self.policy.http_timeout + 1.0
        while self._live_threads() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


# -- refreshers ------------------------------------------------------------------------
# Module functions holding only a weak reference, dropped while they sleep: a
# bound method as a thread target (or a coroutine of one) would keep a dropped
# keyring, and its refresher, alive forever. The weakref's callback wakes them.


def _refresher_main(ref: weakref.ref[Keyring], wake: threading.Event) -> None:
    me = threading.current_thread()
    try:
        while True:
            keyring = ref()
            if keyring is None or keyring._is_closed():
                return
            keyring._wakeups += 1
            # Clear before planning: a fetch landing after the plan sets it again.
            wake.clear()
            delay, _ = keyring._refresh_plan()
            del keyring
            if delay > 0:
                wake.wait(delay)
            keyring = ref()
            if keyring is None or keyring._is_closed():
                return
            keyring.refresh_sync()
            del keyring
    finally:
        keyring = ref()
        if keyring is not None:
            with keyring._lock:
                keyring._threads.discard(me)
                if keyring._refresher_thread is me:
                    keyring._refresher_thread = None


async def _refresher_coro(ref: weakref.ref[Keyring], stop: asyncio.Future[None]) -> None:
    import asyncio

    try:
        while True:
            keyring = ref()
            if keyring is None or keyring._is_closed():
                return
            keyring._wakeups += 1
            delay, flight = keyring._refresh_plan()
            del keyring
            waiter = flight.async_waiter() if flight is not None else None
            try:
                if waiter is not None or delay > 0:
                    wanted = {stop} if waiter is None else {stop, waiter}
                    await asyncio.wait(wanted, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if waiter is not None:
                    waiter.cancel()
            keyring = ref()
            if keyring is None or keyring._is_closed():
                return
            refresh = keyring.refresh_async()
            del keyring
            await refresh
    finally:
        stop.cancel()
