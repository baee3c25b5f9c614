"""The I/O shell around :class:`~clerkguard._core.jwks.JWKSState`.

One :class:`Keyring` per :class:`~clerkguard.ClerkAuth`. Sync callers wait on
a ``threading.Event``; async callers await a future resolved thread-safely;
both join the same in-flight fetch, so a cold start hit by threads and tasks
at once makes one request. The lock is held only around state-machine calls,
never during I/O.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from joserfc.jwk import RSAKey

from ._core.jwks import Decision, JWKSPolicy, JWKSState, Step
from ._core.keys import KeySet
from ._http import FetchError, fetch_jwks_async, fetch_jwks_sync

__all__ = ["JWKSStats", "Keyring"]

logger = logging.getLogger("clerkguard.jwks")

#: Minimum seconds between two WARNING logs about a failing endpoint.
_WARN_EVERY = 300.0


@dataclass(frozen=True)
class JWKSStats:
    """A snapshot of the key cache, for health checks and dashboards.

    Attributes:
        fetches: Fetches started since construction.
        failures: Fetches that failed.
        last_success: Wall-clock time (Unix seconds) of the last good fetch.
        last_error: Reason of the most recent failure, ``None`` after a success.
        key_ids: The usable key ids, sorted.
        generation: Bumped each time the key material changes.
        stale: True when the keys are older than ``jwks_ttl``.
    """

    fetches: int
    failures: int
    last_success: float | None
    last_error: str | None
    key_ids: tuple[str, ...]
    generation: int
    stale: bool


class _Flight:
    """One fetch in progress: a thread event plus async waiters on any loop."""

    __slots__ = ("_lock", "_waiters", "event", "flight_id")

    def __init__(self, flight_id: int) -> None:
        self.flight_id = flight_id
        self.event = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    def async_waiter(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.event.is_set():
                future.set_result(None)
            else:
                self._waiters.append((loop, future))
        return future

    def done(self) -> None:
        with self._lock:
            self.event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed; nobody is waiting there
                pass


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_keyrings: weakref.WeakSet[Keyring] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for keyring in list(_keyrings):
        keyring._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Keyring:
    """Keys for one ClerkAuth: a static PEM key, or a remote JWKS with caching."""

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
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self._closed = False
        self._pid = os.getpid()
        self._last_warning = float("-inf")
        self._last_success_wall: float | None = None
        self._refresher_thread: threading.Thread | None = None
        self._refresher_task: asyncio.Task[None] | None = None
        self._wake = threading.Event()
        _keyrings.add(self)

    # -- public-ish ------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Current key generation (static keys: always 0)."""
        return self._state.generation

    def stats(self) -> JWKSStats:
        """A consistent snapshot of the cache."""
        with self._lock:
            state = self._state
            keyset = state.keyset
            now = time.monotonic()
            stale = state.fetched_at is None or now - state.fetched_at > self.policy.ttl
            return JWKSStats(
                fetches=state.fetches,
                failures=state.failures,
                last_success=self._last_success_wall,
                last_error=state.last_error,
                key_ids=tuple(sorted(keyset.keys)) if keyset else (),
                generation=state.generation,
                stale=stale and self.static_key is None,
            )

    def keyset(self) -> KeySet | None:
        """The current key set, if any (for the CLI and health checks)."""
        return self._state.keyset

    # -- resolving a key -------------------------------------------------------
    def _decide(self, kid: str, rejected: int | None, waited: bool) -> tuple[Decision, _Flight | None]:
        with self._lock:
            decision = self._state.resolve(kid, time.monotonic(), rejected_generation=rejected, waited=waited)
            started = decision.step is Step.FETCH or decision.refresh
            if started:
                self._flight = _Flight(self._state.flight_id)
            return decision, self._flight

    def key_sync(self, kid: str, rejected: int | None = None) -> Decision:
        """Resolve ``kid`` from a thread; may wait up to ``http_timeout``."""
        if self.static_key is not None:
            return self._static(rejected)
        self._check_pid()
        waited = False
        while True:
            decision, flight = self._decide(kid, rejected, waited)
            if decision.step is Step.USE:
                if decision.refresh and flight is not None:
                    self._spawn_thread_fetch(flight)
                self._ensure_thread_refresher()
                return decision
            if decision.step is Step.REJECT or flight is None:
                return decision
            if decision.step is Step.FETCH:
                self._spawn_thread_fetch(flight)
            if not flight.event.wait(self.policy.http_timeout):
                return self._timed_out()
            waited = True

    async def key_async(self, kid: str, rejected: int | None = None) -> Decision:
        """Resolve ``kid`` from a coroutine; never blocks the event loop."""
        if self.static_key is not None:
            return self._static(rejected)
        self._check_pid()
        waited = False
        while True:
            decision, flight = self._decide(kid, rejected, waited)
            if decision.step is Step.USE:
                if decision.refresh and flight is not None:
                    self._spawn_task_fetch(flight)
                self._ensure_task_refresher()
                return decision
            if decision.step is Step.REJECT or flight is None:
                return decision
            if decision.step is Step.FETCH:
                self._spawn_task_fetch(flight)
            try:
                await asyncio.wait_for(flight.async_waiter(), self.policy.http_timeout)
            except asyncio.TimeoutError:
                return self._timed_out()
            waited = True

    def _static(self, rejected: int | None) -> Decision:
        if rejected is not None:
            return Decision(Step.REJECT)
        return Decision(Step.USE, key=self.static_key)

    def _timed_out(self) -> Decision:
        return Decision(Step.REJECT, unavailable=True, retry_after=1.0)

    # -- fetching ----------------------------------------------------------------
    def _finish(self, flight: _Flight, result: KeySet | str) -> None:
        now = time.monotonic()
        with self._lock:
            changed = self._state.finish(flight.flight_id, now, result)
            if self._flight is flight:
                self._flight = None
            failures = self._state.consecutive_failures
        if isinstance(result, str):
            if now - self._last_warning >= _WARN_EVERY or failures == 1:
                self._last_warning = now
                logger.warning("JWKS fetch from %s failed: %s (keeping current keys)", self.url, result)
        else:
            self._last_success_wall = time.time()
            if changed:
                logger.info("JWKS keys loaded from %s: %s", self.url, ", ".join(sorted(result.keys)))
                if self._on_change is not None:
                    self._on_change()
        flight.done()
        self._wake.set()

    def _fetch_in_thread(self, flight: _Flight) -> None:
        assert self.url is not None
        try:
            result: KeySet | str = fetch_jwks_sync(
                self.url, self._headers, self.policy.http_timeout, self._transport
            )
        except FetchError as exc:
            result = str(exc)
        except BaseException as exc:  # never leave waiters hanging
            result = f"unexpected error ({type(exc).__name__})"
        self._finish(flight, result)

    def _spawn_thread_fetch(self, flight: _Flight) -> None:
        thread = threading.Thread(
            target=self._fetch_in_thread, args=(flight,), name="clerkguard-jwks-fetch", daemon=True
        )
        thread.start()

    async def _fetch_in_task(self, flight: _Flight) -> None:
        assert self.url is not None
        result: KeySet | str
        try:
            result = await asyncio.wait_for(
                fetch_jwks_async(self.url, self._headers, self.policy.http_timeout, self._transport),
                self.policy.http_timeout,
            )
        except FetchError as exc:
            result = str(exc)
        except asyncio.TimeoutError:
            result = "timed out"
        except asyncio.CancelledError:
            self._finish(flight, "cancelled")
            raise
        except Exception as exc:
            result = f"unexpected error ({type(exc).__name__})"
        self._finish(flight, result)

    _tasks: ClassVar[set[asyncio.Task[None]]] = set()

    def _spawn_task_fetch(self, flight: _Flight) -> None:
        task = asyncio.get_running_loop().create_task(self._fetch_in_task(flight))
        # Keep a strong reference: the loop holds tasks only weakly.
        Keyring._tasks.add(task)
        task.add_done_callback(Keyring._tasks.discard)

    # -- background refresh --------------------------------------------------------
    def _start_refresh(self) -> _Flight | None:
        with self._lock:
            if self._closed or not self._state.start_refresh(time.monotonic()):
                return None
            self._flight = _Flight(self._state.flight_id)
            return self._flight

    def _seconds_to_refresh(self) -> float:
        with self._lock:
            return max(self._state.next_refresh_at - time.monotonic(), 0.05)

    def refresh_sync(self) -> None:
        """Refresh now if due, from this thread (used by the refresher and CLI)."""
        flight = self._start_refresh()
        if flight is not None:
            self._fetch_in_thread(flight)

    async def refresh_async(self) -> None:
        """Refresh now if due, from this event loop."""
        flight = self._start_refresh()
        if flight is not None:
            await self._fetch_in_task(flight)

    def _refresher_loop(self) -> None:
        while not self._is_closed():
            self._wake.clear()
            self._wake.wait(min(self._seconds_to_refresh(), 3600.0))
            if self._is_closed():
                return
            self.refresh_sync()

    def _ensure_thread_refresher(self) -> None:
        if self._refresher_thread is not None or self._closed or self.url is None:
            return
        with self._lock:
            if self._has_refresher_thread():
                return
            self._refresher_thread = threading.Thread(
                target=self._refresher_loop, name="clerkguard-jwks-refresher", daemon=True
            )
        self._refresher_thread.start()

    async def _refresher_coro(self) -> None:
        while not self._is_closed():
            await asyncio.sleep(min(self._seconds_to_refresh(), 3600.0))
            if self._is_closed():
                return
            await self.refresh_async()

    def _ensure_task_refresher(self) -> None:
        task = self._refresher_task
        if (task is not None and not task.done()) or self._closed or self.url is None:
            return
        self._refresher_task = asyncio.get_running_loop().create_task(self._refresher_coro())

    def start_async_refresher(self) -> None:
        """Start the async refresher in the running loop (adapters' startup hooks)."""
        self._ensure_task_refresher()

    # -- lifecycle -------------------------------------------------------------------
    def _is_closed(self) -> bool:
        # A method, not an attribute read: other threads flip it.
        return self._closed

    def _has_refresher_thread(self) -> bool:
        return self._refresher_thread is not None

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # forked without register_at_fork (or it raced)
            self._reset_after_fork()

    def _reset_after_fork(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flight = None
        self._refresher_thread = None
        self._refresher_task = None
        self._state.reset_after_fork()

    def close(self) -> None:
        """Stop the refresher thread; idempotent."""
        self._closed = True
        self._wake.set()
        thread = self._refresher_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.policy.http_timeout + 1)
        self._refresher_thread = None

    async def aclose(self) -> None:
        """Stop both refreshers; idempotent."""
        self.close()
        task = self._refresher_task
        self._refresher_task = None
        if task is not None and not task.done():
            if task.get_loop() is asyncio.get_running_loop():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            else:
                task.get_loop().call_soon_threadsafe(task.cancel)
