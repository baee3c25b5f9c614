"""Strict JSON decoding for token segments and JWKS documents.

``json.loads`` alone accepts UTF-16/32 byte input, duplicate member names
(last one wins, the classic parser-differential trick), ``NaN``/``Infinity``,
``1e400`` (becomes ``inf``), lone surrogate escapes and unbounded nesting.
Tokens are attacker-controlled, so every one of those is rejected here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["StrictJSONError", "loads_object"]

#: Deepest nesting of objects/arrays (the outer object is level 1) in a token segment or JWKS.
MAX_DEPTH = 16
#: Longest integer literal accepted (``exp`` needs 10 digits).
MAX_INT_DIGITS = 32


class StrictJSONError(ValueError):
    """The input is not strict JSON (or not an object)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise StrictJSONError("duplicate member name")
    return obj


def _constant(name: str) -> Any:
    raise StrictJSONError("non-finite number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError("non-finite number")
    return value


def _int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise StrictJSONError("number too large")
    return int(text)


_decoder = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_constant=_constant,
    parse_float=_float,
    parse_int=_int,
    strict=True,
)
# The C scanner JSONDecoder.__init__ builds from the hooks above (CPython's
# json.scanner.make_scanner); called directly by loads_object.
_scan_once: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def _depth_ok(value: Any, depth: int, limit: int = MAX_DEPTH) -> bool:
    """True unless a container sits deeper than ``limit`` (``value`` is at ``depth``).

    Only containers count, so the rule agrees with the bracket-count shortcut
    in `loads_object` and cannot depend on what strings contain.
    """
    if isinstance(value, dict):
        return depth <= limit and all(_depth_ok(v, depth + 1, limit) for v in value.values())
    if isinstance(value, list):
        return depth <= limit and all(_depth_ok(v, depth + 1, limit) for v in value)
    return True


def _strings_ok(value: Any) -> bool:
    """True unless a string (key or value) holds a lone surrogate."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_strings_ok(k) and _strings_ok(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_strings_ok(v) for v in value)
    return True


def loads_object(data: bytes, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Decode ``data`` as one strict-JSON object nested at most ``max_depth`` deep.

    Raises:
        StrictJSONError: for anything that is not a strict UTF-8 JSON object.
    """
    try:
        text = data.decode("utf-8")  # strict: no UTF-16/32 sniffing, no bad bytes
        # Compact JSON (every token) parses in one scanner call; anything else
        # (surrounding whitespace, trailing data, a bad start) takes the full
        # JSONDecoder.decode path and its exact errors. Saves two regex matches.
        try:
            value, end = _scan_once(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):
            value = _decoder.decode(text)
    except StrictJSONError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int limits
        raise StrictJSONError(type(exc).__name__) from None
    if not isinstance(value, dict):
        raise StrictJSONError("not an object")
    # Cheap guards first: only inspect deeper when the raw text could offend.
    if text.count("{") + text.count("[") > max_depth and not _depth_ok(value, 1, max_depth):
        raise StrictJSONError("nesting too deep")
    if "\\u" in text and not _strings_ok(value):
        raise StrictJSONError("lone surrogate")
    return value
