"""The two JWKS fetchers: one on ``httpx.Client``, one on ``httpx.AsyncClient``.

They share every rule (status, redirects, size cap, decompression, deadline)
through :func:`_check_response` and :class:`_BodyReader`; only the I/O calls differ.
"""

from __future__ import annotations

import ssl
import threading
import time
import zlib
from collections.abc import Mapping
from typing import Any

import httpx

from ._core.keys import MAX_JWKS_BYTES, KeySet, parse_jwks

__all__ = ["FetchError", "fetch_jwks_async", "fetch_jwks_sync"]

_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


class FetchError(Exception):
    """A JWKS fetch failed; the message is a short, safe reason."""


def _tls() -> ssl.SSLContext:
    # Building a verifying SSL context costs milliseconds; build it once.
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


class _BodyReader:
    """Accumulates a response body under the size cap, decompressing itself.

    The raw stream is read so that a small gzip bomb cannot expand beyond the
    cap inside one decoder call.
    """

    def __init__(self, encoding: str, deadline: float) -> None:
        self.deadline = deadline
        self.buf = bytearray()
        enc = encoding.strip().lower()
        if enc in ("", "identity"):
            self._z: Any = None
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise FetchError(f"unsupported content-encoding {enc[:20]!r}")

    def feed(self, chunk: bytes) -> None:
        if time.monotonic() > self.deadline:
            raise FetchError("timed out")
        if self._z is None:
            self.buf += chunk
        else:
            try:
                self.buf += self._z.decompress(chunk, MAX_JWKS_BYTES + 1 - len(self.buf))
            except zlib.error:
                raise FetchError("corrupt compressed body") from None
            if self._z.unconsumed_tail:
                raise FetchError("body larger than 1 MiB")
        if len(self.buf) > MAX_JWKS_BYTES:
            raise FetchError("body larger than 1 MiB")

    def keyset(self) -> KeySet:
        try:
            return parse_jwks(bytes(self.buf))
        except ValueError as exc:
            raise FetchError(str(exc)) from None


def _check_response(response: httpx.Response) -> None:
    if response.status_code != 200:
        if 300 <= response.status_code < 400:
            raise FetchError(f"HTTP {response.status_code} redirect (not followed)")
        raise FetchError(f"HTTP {response.status_code}")


def _client_options(timeout: float, transport: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "timeout": httpx.Timeout(timeout),
        "follow_redirects": False,
        "trust_env": False,
        "headers": {"Accept": "application/json", "Accept-Encoding": "gzip, identity"},
    }
    if transport is not None:
        options["transport"] = transport
    else:
        options["verify"] = _tls()
    return options


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FetchError):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP error ({type(exc).__name__})"
    return f"unexpected error ({type(exc).__name__})"


def fetch_jwks_sync(url: str, headers: Mapping[str, str], timeout: float, transport: Any = None) -> KeySet:
    """Fetch and parse a JWKS document with a blocking client.

    Raises:
        FetchError: for every failure, with a reason safe to log.
    """
    deadline = time.monotonic() + timeout
    try:
        with httpx.Client(**_client_options(timeout, transport)) as client:
            with client.stream("GET", url, headers=dict(headers)) as response:
                _check_response(response)
                reader = _BodyReader(response.headers.get("content-encoding", ""), deadline)
                if response.is_stream_consumed:  # in-memory transports (httpx.MockTransport)
                    reader.feed(response.content)
                else:
                    for chunk in response.iter_raw():
                        reader.feed(chunk)
        return reader.keyset()
    except Exception as exc:
        raise FetchError(_describe(exc)) from None


async def fetch_jwks_async(
    url: str, headers: Mapping[str, str], timeout: float, transport: Any = None
) -> KeySet:
    """Fetch and parse a JWKS document with an async client (same rules as sync)."""
    deadline = time.monotonic() + timeout
    try:
        async with httpx.AsyncClient(**_client_options(timeout, transport)) as client:
            async with client.stream("GET", url, headers=dict(headers)) as response:
                _check_response(response)
                reader = _BodyReader(response.headers.get("content-encoding", ""), deadline)
                if response.is_stream_consumed:  # in-memory transports (httpx.MockTransport)
                    reader.feed(response.content)
                else:
                    async for chunk in response.aiter_raw():
                        reader.feed(chunk)
        return reader.keyset()
    except Exception as exc:
        raise FetchError(_describe(exc)) from None
