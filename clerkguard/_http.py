"""The hardened HTTP request every clerkguard fetch uses (JWKS, Backend API, CLI).

One request rule set, two I/O shells: `request_sync` on
``httpx.Client`` and `request_async` on ``httpx.AsyncClient``. They
share every rule (allowed statuses, no redirects, size cap, decompression,
deadline, no proxies or ``.netrc``, credential-free log lines) through
`_check_response` and `_BodyReader`; only the I/O calls differ.
Every failure is a `FetchError` whose message is a short fixed phrase
(never a body, a header or a URL with its credentials).

``http_timeout`` bounds the *whole* fetch, not each read: httpx timeouts apply
per operation, so a server that drips one byte a second would hold a plain
client forever. The async fetcher is wrapped in ``asyncio.wait_for``. The sync
fetcher runs on `clerkguard._httpio`'s deadline backend, an httpcore network backend that
caps every connect, read and write at the time left before the deadline and
can be aborted from another thread (``close()``) by shutting the socket down.

Each fetch uses its own client: fetches are rare (every few minutes), a fresh
client has no pooled connection to inherit across ``fork()``, and nothing
needs closing between fetches.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import os
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._core.keys import MAX_JWKS_BYTES, KeySet, parse_jwks
from .config import safe_url

if TYPE_CHECKING:
    import ssl

    import httpcore
    import httpx

# httpx and httpcore (and asyncio, ssl, socket) are imported by the functions that fetch, so
# that they load with the first fetch: `import clerkguard` must stay cheap for
# CLIs, serverless handlers and `jwt_key` configurations, which never fetch.

__all__ = [
    "FetchControl",
    "FetchError",
    "HTTPRequest",
    "HTTPResponse",
    "fetch_jwks_async",
    "fetch_jwks_sync",
    "request_async",
    "request_sync",
    "safe_url",
]

_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None
_plain_context: ssl.SSLContext | None = None


def _reset_ssl_lock() -> None:
    # A lock held by another thread at fork() stays held forever in the child.
    global _ssl_lock
    _ssl_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_ssl_lock)


class FetchError(Exception):
    """A request failed; the message is a short, safe reason (never the body).

    Attributes:
        status: The HTTP status when the server answered one that was not
            accepted (``None`` for network failures, caps, timeouts).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class HTTPRequest:
    """One request and the rules its answer must meet.

    Attributes:
        method: ``GET`` or ``POST``.
        url: The full URL (``https``, or ``http`` for loopback: checked at configuration).
        headers: Extra request headers (credentials among them: never logged).
        content: Request body bytes, if any.
        max_bytes: Largest body read, after decompression.
        accept: Statuses whose body is read and returned; any other status is
            a `FetchError` (3xx: "redirect (not followed)").
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    max_bytes: int = MAX_JWKS_BYTES
    accept: frozenset[int] = frozenset({200})


@dataclass(frozen=True)
class HTTPResponse:
    """An accepted answer: its status and its whole (decompressed, capped) body."""

    status: int
    body: bytes


def _tls() -> ssl.SSLContext:
    # Building a verifying SSL context loads the CA bundle (milliseconds): once.
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            import httpx

            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


#: What httpx's async transport imports on its first request (anyio and its
#: streams, ~20 ms): imported in a worker thread instead of on the event loop.
_ASYNC_STACK = (
    "httpx",  # with httpcore: imported with the first fetch (see the imports note above)
    "httpcore",
    "sniffio",
    "anyio",
    "anyio.lowlevel",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "anyio.streams.tls",
    "anyio._backends._asyncio",
    "encodings.idna",
)
_async_stack_ready = False


def _prepare_async(url: str | None) -> None:
    """Do, off the event loop, the slow one-time work of a first async fetch."""
    global _async_stack_ready
    if not _async_stack_ready:
        for name in _ASYNC_STACK:
            try:
                importlib.import_module(name)
            except ImportError:  # another httpx release, another stack: only an optimisation
                pass
        _async_stack_ready = True
    if url is not None:
        _context_for(url)  # https: loads the CA bundle once


def _is_https(url: str) -> bool:
    return url[:6].lower() == "https:"


def _context_for(url: str) -> ssl.SSLContext:
    """The SSL context for ``url``: the verifying one for https.

    Plain-http URLs (allowed for loopback only) never speak TLS, and redirects
    are not followed, so they get a bare context that verifies with no trust
    anchors at all (cheap to build; it could not accept any certificate).
    """
    if _is_https(url):
        return _tls()
    global _plain_context
    with _ssl_lock:
        if _plain_context is None:
            import ssl

            _plain_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return _plain_context


class FetchControl:
    """The deadline of one sync fetch, and a switch to abort it from another thread."""

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.aborted = False
        self._streams: list[httpcore.NetworkStream] = []
        self._lock = threading.Lock()

    def remaining(self, timeout: float | None, error: type[Exception]) -> float:
        """Seconds an I/O call may block: its own timeout, capped by the deadline."""
        if self.aborted:
            raise error("fetch aborted")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise error("deadline exceeded")
        return left if timeout is None else min(timeout, left)

    def track(self, stream: httpcore.NetworkStream) -> httpcore.NetworkStream:
        """Remember an open connection so that `abort` can interrupt it."""
        with self._lock:
            aborted = self.aborted
            if not aborted:
                self._streams.append(stream)
        if aborted:
            import httpcore

            stream.close()
            raise httpcore.ConnectError("fetch aborted")
        return stream

    def abort(self) -> None:
        """Stop the fetch now: a blocked ``recv`` in the fetching thread returns."""
        with self._lock:
            self.aborted = True
            streams, self._streams = self._streams, []
        import socket

        for stream in streams:
            sock = stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                try:
                    # shutdown(), unlike close(), wakes a thread blocked in recv().
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass


def _size_text(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"


class _BodyReader:
    """Accumulates a response body under the size cap, decompressing itself.

    The raw stream is read so that a small gzip bomb cannot expand beyond the
    cap inside one decoder call: each call may produce at most the room left.
    """

    def __init__(self, response: httpx.Response, deadline: float, limit: int) -> None:
        self.deadline = deadline
        self.limit = limit
        self.buf = bytearray()
        enc = response.headers.get("content-encoding", "").strip().lower()
        if response.is_stream_consumed:
            # In-memory transports (httpx.MockTransport) hand over a body that
            # httpx has already read and decoded: only the size cap applies.
            enc = "identity"
        if enc in ("", "identity"):
            self._z: Any = None
            # Refuse an announced oversize body before reading a byte of it.
            length = response.headers.get("content-length", "")
            if length.isascii() and length.isdigit() and int(length) > limit:
                raise self._too_large()
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise FetchError("unsupported content-encoding")

    def _too_large(self) -> FetchError:
        return FetchError(f"body larger than {_size_text(self.limit)}")

    def feed(self, chunk: bytes) -> None:
        if time.monotonic() > self.deadline:
            raise FetchError("timed out")
        if self._z is None:
            self.buf += chunk
        else:
            try:
                self.buf += self._z.decompress(chunk, self.limit + 1 - len(self.buf))
            except zlib.error:
                raise FetchError("corrupt compressed body") from None
            if self._z.unconsumed_tail:
                raise self._too_large()
        if len(self.buf) > self.limit:
            raise self._too_large()

    def body(self) -> bytes:
        if self._z is not None and not self._z.eof:
            raise FetchError("truncated compressed body")
        return bytes(self.buf)


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    if response.is_stream_consumed:
        yield response.content
    else:
        yield from response.iter_raw()


def _check_response(response: httpx.Response, accept: frozenset[int]) -> None:
    status = response.status_code
    if status not in accept:
        if 300 <= status < 400:
            raise FetchError(f"HTTP {status} redirect (not followed)", status)
        raise FetchError(f"HTTP {status}", status)


def _client_options(url: str, timeout: float, transport: Any) -> dict[str, Any]:
    import httpx

    options: dict[str, Any] = {
        "timeout": httpx.Timeout(timeout),
        "follow_redirects": False,
        # No proxies or .netrc from the environment: keys come from the configured URL only.
        "trust_env": False,
        "headers": {"Accept": "application/json", "Accept-Encoding": "gzip, identity"},
    }
    if transport is not None:
        options["transport"] = transport
    else:
        options["verify"] = _context_for(url)
    return options


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FetchError):
        return str(exc)
    import httpcore
    import httpx

    if isinstance(exc, (httpx.TimeoutException, httpcore.TimeoutException)):
        return "timed out"
    if isinstance(exc, (httpx.ConnectError, httpcore.ConnectError)):
        return "connection failed"
    if isinstance(exc, (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError)):
        return "connection error"
    return f"unexpected error ({type(exc).__name__})"


# httpx logs every request's full URL at INFO ("HTTP Request: GET <url> ...");
# a JWKS URL may carry credentials or a token in its query. While one of our
# fetches runs (this context only: the fetch thread or task), its records show
# the redacted URL instead. Other requests of the application are untouched.
_fetching: contextvars.ContextVar[str | None] = contextvars.ContextVar("clerkguard_jwks_fetch", default=None)


class _RedactJWKSURL(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        safe = _fetching.get()
        if safe is not None and isinstance(record.args, tuple):
            import httpx  # loaded: this is one of its records

            record.args = tuple(safe if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactJWKSURL())


def request_sync(request: HTTPRequest, control: FetchControl, transport: Any = None) -> HTTPResponse:
    """Send ``request`` with a blocking client; everything within ``control.deadline``.

    Raises:
        FetchError: for every failure, with a reason safe to log.
    """
    import httpcore
    import httpx

    from ._httpio import DeadlineTransport

    url = request.url
    token = _fetching.set(safe_url(url))
    try:
        if transport is None:
            transport = DeadlineTransport(_context_for(url), control)
        timeout = control.remaining(None, httpcore.ConnectTimeout)
        with httpx.Client(**_client_options(url, timeout, transport)) as client:
            with client.stream(
                request.method, url, headers=dict(request.headers), content=request.content
            ) as response:
                _check_response(response, request.accept)
                reader = _BodyReader(response, control.deadline, request.max_bytes)
                for chunk in _raw_chunks(response):
                    reader.feed(chunk)
        return HTTPResponse(response.status_code, reader.body())
    except FetchError as exc:
        if control.aborted:
            raise FetchError("aborted (closing)") from None
        raise FetchError(str(exc), exc.status) from None
    except Exception as exc:
        if control.aborted:
            raise FetchError("aborted (closing)") from None
        # `from None`: httpx exceptions carry the request, headers included.
        raise FetchError(_describe(exc)) from None
    finally:
        _fetching.reset(token)


async def request_async(request: HTTPRequest, timeout: float, transport: Any = None) -> HTTPResponse:
    """Send ``request`` with an async client (same rules as `request_sync`).

    The caller bounds the whole call with ``asyncio.wait_for``; ``timeout``
    also caps each network operation and the body reading.
    """
    import asyncio

    url = request.url
    deadline = time.monotonic() + timeout
    token = _fetching.set(safe_url(url))
    try:
        tls = transport is None and _ssl_context is None and _is_https(url)
        if not _async_stack_ready or tls:
            # The first fetch imports httpx and its async stack (and loads the CA
            # bundle) in a worker thread: tens of milliseconds the loop would stall.
            try:
                await asyncio.to_thread(_prepare_async, url if transport is None else None)
            except RuntimeError:  # the loop's executor is shutting down: do it inline
                pass
        import httpx

        async with httpx.AsyncClient(**_client_options(url, timeout, transport)) as client:
            async with client.stream(
                request.method, url, headers=dict(request.headers), content=request.content
            ) as response:
                _check_response(response, request.accept)
                reader = _BodyReader(response, deadline, request.max_bytes)
                if response.is_stream_consumed:
                    reader.feed(response.content)
                else:
                    async for chunk in response.aiter_raw():
                        reader.feed(chunk)
        return HTTPResponse(response.status_code, reader.body())
    except FetchError as exc:
        raise FetchError(str(exc), exc.status) from None
    except Exception as exc:
        raise FetchError(_describe(exc)) from None
    finally:
        _fetching.reset(token)


def _keyset(response: HTTPResponse) -> KeySet:
    try:
        return parse_jwks(response.body)
    except ValueError as exc:
        # JWKSError messages are fixed phrases; no part of the body is quoted.
        raise FetchError(str(exc)) from None


def fetch_jwks_sync(
    url: str, headers: Mapping[str, str], control: FetchControl, transport: Any = None
) -> KeySet:
    """GET and parse a JWKS document within ``control.deadline`` (`request_sync`)."""
    return _keyset(request_sync(HTTPRequest("GET", url, headers), control, transport))


async def fetch_jwks_async(
    url: str, headers: Mapping[str, str], timeout: float, transport: Any = None
) -> KeySet:
    """GET and parse a JWKS document (`request_async`)."""
    return _keyset(await request_async(HTTPRequest("GET", url, headers), timeout, transport))
