"""Helpers of the JWKS shell tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from clerkguard import ClerkAuth, Session

#: ``await verify(auth, token)``: ``auth.verify`` (in a worker thread) or ``auth.averify``.
Verify = Callable[[ClerkAuth, str], Awaitable[Session]]
#: ``await check(auth, token)``: ``"ok"`` or ``"<status> <reason>"``.
Check = Callable[[ClerkAuth, str], Awaitable[str]]

#: The two shells: the thread fetcher behind ``verify`` and the task fetcher behind ``averify``.
MODES = ["sync", "async"]


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (a fetch landing in the background); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def jwks_threads(auth: ClerkAuth) -> list[str]:
    """Names of the live threads of ``auth``'s keyring."""
    return [t.name for t in threading.enumerate() if t.name.startswith(auth.keyring.name + "-")]


def jwks_tasks(auth: ClerkAuth) -> list[str]:
    """Names of the live tasks of ``auth``'s keyring on the running loop."""
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(auth.keyring.name + "-")]
