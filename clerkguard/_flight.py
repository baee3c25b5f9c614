"""Single-flight for threads and tasks together: one operation in progress, joined by all.

A `Flight` is one operation in progress (a JWKS fetch, a Backend API
call). Sync callers wait on its ``threading.Event``; async callers await a
future that the flight resolves thread-safely on *their own* loop. So
threads and tasks, on any number of event loops, join the same operation.

Waits are bounded by a deadline, however the operation behaves. An operation
run by a task whose event loop has stopped or closed can never finish:
waiters notice (they poll that loop while they wait) and abandon it.

`SingleFlight` is the keyed form (one flight per key: a token, a user
id). The JWKS `Keyring` drives bare flights
itself, because its state machine decides when a fetch starts.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._http import FetchControl

if TYPE_CHECKING:
    import asyncio

# asyncio is imported where a loop is running (it is, then): a sync program never loads it.

__all__ = ["Flight", "SingleFlight", "resolve_future", "running_loop", "wait_async", "wait_sync"]

#: How often a waiter checks that the event loop running its operation is still alive.
ORPHAN_POLL = 0.1

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Flight:
    """One operation in progress: a thread event plus async waiters on any loop."""

    __slots__ = ("_lock", "_waiters", "control", "event", "finished", "flight_id", "loop", "result", "task")

    def __init__(self, flight_id: int, loop: asyncio.AbstractEventLoop | None) -> None:
        self.flight_id = flight_id
        self.event = threading.Event()
        #: The loop running the operation's task; ``None`` for one in a thread.
        self.loop = loop
        self.task: asyncio.Task[Any] | None = None
        #: Deadline and abort switch of an operation in a thread.
        self.control: FetchControl | None = None
        #: Set (under the owner's lock) when the outcome has been recorded.
        self.finished = False
        #: The outcome, for owners that keep it on the flight (`SingleFlight`).
        self.result: Any = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    def orphaned(self) -> bool:
        """True when the loop that runs this operation cannot run it any more."""
        loop = self.loop
        if loop is None or self.event.is_set():
            return False
        return loop.is_closed() or not loop.is_running()

    def async_waiter(self) -> asyncio.Future[None]:
        """A future on the running loop, resolved when the flight lands."""
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.event.is_set():
                future.set_result(None)
            else:
                self._waiters.append((loop, future))
        return future

    def done(self) -> None:
        """Release every waiter (idempotent)."""
        with self._lock:
            self.event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(resolve_future, future)
            except RuntimeError:  # that loop is closed; nobody is waiting there
                pass

    def cancel(self) -> None:
        """Interrupt the operation: shut its socket down (thread) or cancel its task."""
        if self.control is not None:
            self.control.abort()
        task = self.task
        if task is not None and not task.done():
            try:
                task.get_loop().call_soon_threadsafe(task.cancel)
            except RuntimeError:  # loop closed: the task will never run again
                pass


def resolve_future(future: asyncio.Future[None]) -> None:
    """Resolve ``future`` unless already done (scheduled on its own loop)."""
    if not future.done():
        future.set_result(None)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this thread, if any."""
    if "asyncio" not in sys.modules:  # never imported: no loop can be running
        return None
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def wait_sync(flight: Flight, deadline: float, on_orphan: Callable[[Flight], None]) -> bool:
    """Wait for ``flight`` until ``deadline``; True once it has landed.

    ``on_orphan`` lands a flight whose event loop died (then True).
    """
    loop = flight.loop
    if loop is not None and loop is running_loop():
        # The operation needs the very loop this thread is blocking (sync
        # verify() called inside a coroutine): waiting would only time out.
        return flight.event.is_set()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return flight.event.is_set()
        if flight.event.wait(remaining if loop is None else min(remaining, ORPHAN_POLL)):
            return True
        if flight.orphaned():
            on_orphan(flight)
            return True


async def wait_async(flight: Flight, deadline: float, on_orphan: Callable[[Flight], None]) -> bool:
    """Await ``flight`` until ``deadline``; True once it has landed (never blocks the loop)."""
    import asyncio

    loop = asyncio.get_running_loop()
    foreign = flight.loop is not None and flight.loop is not loop
    waiter = flight.async_waiter()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return flight.event.is_set()
            await asyncio.wait({waiter}, timeout=min(remaining, ORPHAN_POLL) if foreign else remaining)
            if waiter.done() or flight.event.is_set():
                return True
            if foreign and flight.orphaned():
                on_orphan(flight)
                return True
    finally:
        if not waiter.done():
            waiter.cancel()


class SingleFlight(Generic[K, V]):
    """At most one operation in progress per key; other threads and tasks join it.

    The operation never raises into its callers: failures are values, built
    by ``failure(reason)`` from a short fixed reason ("timed out", "event
    loop stopped", ...), so one outcome can be handed to every waiter.

    Args:
        timeout: Longest wait of any caller, and the deadline given to the operation.
        failure: Builds the outcome of an operation that did not complete.
    """

    def __init__(self, timeout: float, failure: Callable[[str], V]) -> None:
        self.timeout = timeout
        self._failure = failure
        self._lock = threading.Lock()
        self._flights: dict[K, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def _join(self, key: K, loop: asyncio.AbstractEventLoop | None) -> tuple[Flight, bool]:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None and not flight.orphaned():
                return flight, False
            flight = Flight(0, loop)
            self._flights[key] = flight
            return flight, True

    def _land(self, key: K, flight: Flight, result: V) -> None:
        with self._lock:
            if flight.finished:
                return
            flight.finished = True
            flight.result = result
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.done()

    def _outcome(self, flight: Flight, landed: bool) -> V:
        if not landed:
            return self._failure("timed out")
        result: V = flight.result
        return result

    def run_sync(self, key: K, operation: Callable[[FetchControl], V]) -> V:
        """Run ``operation(control)`` in this thread, or join the one in progress for ``key``."""
        flight, leader = self._join(key, None)
        if leader:
            control = FetchControl(self.timeout)
            flight.control = control
            result = self._failure("interrupted")
            try:
                result = operation(control)
            except Exception as exc:
                result = self._failure(f"unexpected error ({type(exc).__name__})")
            finally:
                self._land(key, flight, result)
            return result
        deadline = time.monotonic() + self.timeout
        landed = wait_sync(flight, deadline, self._orphan_lander(key))
        return self._outcome(flight, landed)

    async def run_async(self, key: K, operation: Callable[[], Awaitable[V]]) -> V:
        """Await ``operation()`` (as a task of this loop), or join the one in progress for ``key``.

        The operation runs as its own task: a caller that is cancelled does
        not cancel it for the others.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        flight, leader = self._join(key, loop)
        if leader:
            task = loop.create_task(self._drive(key, flight, operation))
            flight.task = task
            # A task cancelled before its first step never runs its `finally`.
            task.add_done_callback(lambda _: self._land(key, flight, self._failure("cancelled")))
        deadline = time.monotonic() + self.timeout
        landed = await wait_async(flight, deadline, self._orphan_lander(key))
        return self._outcome(flight, landed)

    def _orphan_lander(self, key: K) -> Callable[[Flight], None]:
        return lambda flight: self._land(key, flight, self._failure("event loop stopped"))

    async def _drive(self, key: K, flight: Flight, operation: Callable[[], Awaitable[V]]) -> None:
        import asyncio

        result = self._failure("cancelled")
        try:
            result = await asyncio.wait_for(operation(), self.timeout)
        except asyncio.TimeoutError:
            result = self._failure("timed out")
        except Exception as exc:
            result = self._failure(f"unexpected error ({type(exc).__name__})")
        finally:
            self._land(key, flight, result)

    def cancel_all(self) -> None:
        """Abort every operation in progress (closing); their waiters get the failure."""
        with self._lock:
            flights = list(self._flights.items())
        for key, flight in flights:
            flight.cancel()
            if flight.orphaned():
                self._land(key, flight, self._failure("event loop stopped"))
