"""Deep-frozen JSON values, shared by every immutable result object.

``freeze`` turns a parsed JSON value into a read-only one (dicts become
``MappingProxyType`` views of private copies, lists become tuples); ``thaw``
turns it back into plain dicts and lists (for JSON output or a mutable copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["EMPTY", "freeze", "thaw"]

# JSON scalars are frozen already: skipping the call for them is most of the speed.
_SCALARS = frozenset({str, int, float, bool, type(None)})

#: The frozen empty object.
EMPTY: Mapping[str, Any] = MappingProxyType({})


def freeze(value: Any) -> Any:
    """A read-only deep copy of JSON-like ``value`` (dict -> mapping proxy, list -> tuple)."""
    if isinstance(value, dict):
        return MappingProxyType({k: v if type(v) in _SCALARS else freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(v if type(v) in _SCALARS else freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A deep, plain (dict/list) copy of JSON-like ``value``, frozen or not."""
    if isinstance(value, Mapping):
        return {k: v if type(v) in _SCALARS else thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _SCALARS else thaw(v) for v in value]
    return value
