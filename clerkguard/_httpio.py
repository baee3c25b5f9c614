"""The httpx/httpcore transport of `clerkguard._http`'s sync fetcher.

Its own module so that the network stack (httpx, httpcore) loads with the
first fetch, not with ``import clerkguard``: `clerkguard._http.request_sync`
imports it. `_DeadlineBackend` is an httpcore network backend that caps every
connect, read and write at the time left before the fetch's deadline and
registers each connection with the `FetchControl` that can abort it.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from ._http import FetchControl

__all__ = ["DeadlineTransport"]


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, control: FetchControl) -> None:
        self._inner = inner
        self._control = control

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._control.remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._control.remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        wait = self._control.remaining(timeout, httpcore.ConnectTimeout)
        tls = self._inner.start_tls(ssl_context, server_hostname, wait)
        return self._control.track(_DeadlineStream(tls, self._control))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, control: FetchControl) -> None:
        self._inner = httpcore.SyncBackend()
        self._control = control

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = self._control.remaining(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, wait, local_address, socket_options)
        return self._control.track(_DeadlineStream(stream, self._control))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for JWKS")

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self._control.deadline - time.monotonic())))


class _CoreStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class DeadlineTransport(httpx.BaseTransport):
    """An httpx transport on an httpcore pool that uses `_DeadlineBackend`.

    Exceptions stay httpcore's; `_describe` maps both families.
    """

    def __init__(self, ssl_context: ssl.SSLContext, control: FetchControl) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_DeadlineBackend(control),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content: Any = request.stream
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=content,
            extensions=request.extensions,
        )
        response = self._pool.handle_request(core_request)
        stream: Any = response.stream
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CoreStream(stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
