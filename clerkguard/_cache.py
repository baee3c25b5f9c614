"""A bounded map of verified results, capped in entries *and* in bytes.

Used for verified session tokens and for Backend API answers about opaque
machine tokens (each [`ClerkAuth`][clerkguard.ClerkAuth] has its own instances).
Reads are lock-free dictionary lookups (the hot path of a repeated token);
inserts, removals and clears take a lock so the byte count stays exact.
When full, the oldest entries go first (dicts keep insertion order).

Each entry is charged a size in bytes by the caller: see `charge` for
the estimate used for token-keyed entries.
"""

from __future__ import annotations

import sys
import threading
from typing import Generic, TypeVar

__all__ = ["BoundedCache", "charge"]

V = TypeVar("V")

#: Tokens up to this length are charged by a formula; longer ones are measured.
_MEASURE_ABOVE = 2048
#: Fixed part of the formula: the entry tuple, the result object, dict slots.
_ENTRY_OVERHEAD = 1536
#: Bytes charged per token character: the token string itself, the decoded
#: claims (about 3/4 of the token is JSON), and the frozen copy a handler may
#: make by reading ``.claims``. Measured on Clerk-shaped tokens (README of
#: benchmarks/cache_memory.py); pathological claim shapes cost more per byte,
#: which is why long tokens are measured instead.
_PER_CHAR = 4


def _deep_size(value: object) -> int:
    """Bytes of a decoded-JSON value: containers, keys, strings and numbers."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def charge(token: str, claims: object) -> int:
    """Bytes an entry keyed by ``token`` holding a result built from ``claims`` keeps.

    A formula for ordinary tokens (no walk on the cold path); a measurement,
    doubled for the frozen copy ``.claims`` may add, above 2 KiB, where a
    claim shape of many tiny members can cost ~8 bytes per token character.
    """
    size = len(token)
    if size <= _MEASURE_ABOVE:
        return _ENTRY_OVERHEAD + _PER_CHAR * size
    return _ENTRY_OVERHEAD + sys.getsizeof(token) + 2 * _deep_size(claims)


class BoundedCache(Generic[V]):
    """``key -> value`` with at most ``max_entries`` entries and ``max_bytes`` charged bytes.

    Args:
        max_entries: Most entries kept (0 disables the cache).
        max_bytes: Most bytes charged in total; an entry charged more than
            this is not stored at all.
    """

    __slots__ = ("_bytes", "_lock", "entries", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        #: ``key -> (value, charged bytes)``; read it directly for a lock-free lookup.
        self.entries: dict[str, tuple[V, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        """Bytes currently charged."""
        return self._bytes

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> V | None:
        """The value for ``key``, or ``None`` (lock-free)."""
        found = self.entries.get(key)
        return None if found is None else found[0]

    def put(self, key: str, value: V, size: int) -> bool:
        """Store ``value`` charged ``size`` bytes, evicting the oldest entries; False if too big."""
        if self.max_entries == 0 or size > self.max_bytes:
            return False
        entries = self.entries
        with self._lock:
            old = entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            while entries and (len(entries) >= self.max_entries or self._bytes + size > self.max_bytes):
                oldest = next(iter(entries))
                self._bytes -= entries.pop(oldest)[1]
            entries[key] = (value, size)
            self._bytes += size
        return True

    def discard(self, key: str) -> None:
        """Forget ``key`` if present."""
        with self._lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self.entries.clear()
            self._bytes = 0
