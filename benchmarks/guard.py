"""Guard overhead benchmark: what ``@require_auth`` adds to a request (design section 8).

Run ``python benchmarks/guard.py``. For Flask (WSGI), Litestar, Starlette,
FastAPI (ASGI) and Django (its WSGI handler with a sync view, its ASGI
handler with an async view; one project serving both routes) it serves two
otherwise identical apps by calling them directly (no test client, no
sockets, so the framework's own cost per request is small and steady):

* **open**: a plain app, handler ``GET /open`` without any clerkguard;
* **guarded**: the app with clerkguard installed (``ClerkGuard`` extension /
  ``ClerkPlugin``) and ``GET /guarded`` under ``@require_auth``, sent a valid
  ``Authorization: Bearer`` token. FastAPI also gets a row for its
  dependency form, ``Depends(requires_auth())``, against the same plain app.

Every guarded request carries the same token, so verification is the cached
repeated-token path; its cost (measured in the same run) is subtracted to
give the guard's overhead *on top of verification*: reading the header,
the decorator and the framework glue (``g``/``request.auth``). Both handlers
take the framework's request, so no injection difference is counted.

Rows are measured in interleaved rounds of short batches with
``time.perf_counter_ns`` (GC paused while timing); the table shows medians.
Exit status 0 unless ``--check`` is given and the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clerkguard import ClerkAuth
from clerkguard.testing import LocalIssuer

#: Guard overhead on top of verification, in µs per request.
TARGET_US = 10.0


@dataclass
class Row:
    """One measured request kind: per-request µs samples, one per batch."""

    name: str
    measure: Callable[[], list[float]]
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median per-request microseconds."""
        return statistics.median(self.samples)


def _per_call(run_batch: Callable[[int], None], batch: int, batches: int) -> list[float]:
    clock = time.perf_counter_ns
    out: list[float] = []
    gc.disable()
    try:
        for _ in range(batches):
            start = clock()
            run_batch(batch)
            out.append((clock() - start) / batch / 1000)
    finally:
        gc.enable()
    return out


# -- Flask (WSGI) ------------------------------------------------------------------------
def flask_rows(auth: ClerkAuth, token: str, batch: int, batches: int) -> list[Row]:
    """Rows for a plain Flask app and a guarded one, called as WSGI apps."""
    import flask
    from werkzeug.test import EnvironBuilder

    from clerkguard.flask import ClerkGuard, current_auth, require_auth

    plain = flask.Flask("plain")

    @plain.get("/open")
    def open_view() -> str:
        return flask.request.method

    guarded = flask.Flask("guarded")
    ClerkGuard(guarded, auth=auth)

    @guarded.get("/guarded")
    @require_auth
    def guarded_view() -> str:
        assert current_auth.user_id
        return flask.request.method

    def wsgi_caller(app: flask.Flask, path: str, headers: list[tuple[str, str]]) -> Callable[[], str]:
        environ = EnvironBuilder(path=path, headers=headers).get_environ()
        status: list[str] = []

        def start_response(code: str, response_headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return None

        def call() -> str:
            status.clear()
            body = app.wsgi_app(dict(environ), start_response)
            try:
                b"".join(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            return status[0]

        return call

    # Both requests carry the same header: parsing a 1 KB header is the
    # framework's cost either way, not the guard's.
    bearer = [("Authorization", f"Bearer {token}")]
    open_call = wsgi_caller(plain, "/open", bearer)
    guarded_call = wsgi_caller(guarded, "/guarded", bearer)
    anonymous = wsgi_caller(guarded, "/guarded", [])
    # The guard must really guard before its cost means anything.
    if not (open_call().startswith("200") and guarded_call().startswith("200")):
        raise SystemExit("flask: the apps do not answer 200")
    if not anonymous().startswith("401"):
        raise SystemExit("flask: the guarded route answered a request without a token")

    def run(call: Callable[[], str]) -> Callable[[int], None]:
        def batch_of(n: int) -> None:
            for _ in range(n):
                call()

        return batch_of

    return [
        Row("flask open", lambda: _per_call(run(open_call), batch, batches)),
        Row("flask guarded", lambda: _per_call(run(guarded_call), batch, batches)),
    ]


# -- Litestar (ASGI) ------------------------------------------------------------------------
def litestar_rows(auth: ClerkAuth, token: str, batch: int, batches: int) -> list[Row]:
    """Rows for a plain Litestar app and a guarded one, called as ASGI apps."""
    from litestar import Litestar, Request, get

    from clerkguard.litestar import ClerkPlugin, require_auth

    @get("/open", sync_to_thread=False)
    def open_handler(request: Request[Any, Any, Any]) -> str:
        return request.method

    @get("/guarded", sync_to_thread=False)
    @require_auth
    def guarded_handler(request: Request[Any, Any, Any]) -> str:
        assert request.auth.user_id
        return request.method

    # manage_lifecycle=False: apps called directly see no lifespan events.
    plain = Litestar([open_handler], openapi_config=None)
    guarded = Litestar(
        [guarded_handler], plugins=[ClerkPlugin(auth, manage_lifecycle=False)], openapi_config=None
    )

    return _asgi_rows("litestar", plain, guarded, token, batch, batches)


def _asgi_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def _asgi_rows(
    name: str,
    plain: Any,
    guarded: Any,
    token: str,
    batch: int,
    batches: int,
    extra: Sequence[tuple[str, Any, str]] = (),
) -> list[Row]:
    """``<name> open`` (``plain``'s ``/open``) and ``<name> guarded`` (``guarded``'s ``/guarded``),
    called as ASGI apps on one event loop; ``extra`` rows are ``(row name, app, path)``."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    def asgi_caller(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> Callable[[], Any]:
        scope = _asgi_scope(path, headers)
        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        async def call() -> int:
            status.clear()
            await app(dict(scope), receive, send)
            return status[0]

        return call

    bearer = [(b"authorization", f"Bearer {token}".encode())]  # same header on both (see flask_rows)
    calls = [
        (f"{name} open", asgi_caller(plain, "/open", bearer)),
        (f"{name} guarded", asgi_caller(guarded, "/guarded", bearer)),
        *((row, asgi_caller(app, path, bearer)) for row, app, path in extra),
    ]
    anonymous = [asgi_caller(guarded, "/guarded", [])]
    anonymous += [asgi_caller(a, p, []) for _, a, p in extra if a is guarded]

    loop = asyncio.new_event_loop()
    if any(loop.run_until_complete(call()) != 200 for _, call in calls):
        raise SystemExit(f"{name}: the apps do not answer 200")
    if any(loop.run_until_complete(call()) != 401 for call in anonymous):
        raise SystemExit(f"{name}: a guarded route answered a request without a token")

    def run(call: Callable[[], Any]) -> Callable[[], list[float]]:
        async def timed() -> list[float]:
            clock = time.perf_counter_ns
            out: list[float] = []
            gc.disable()
            try:
                for _ in range(batches):
                    start = clock()
                    for _ in range(batch):
                        await call()
                    out.append((clock() - start) / batch / 1000)
            finally:
                gc.enable()
            return out

        return lambda: loop.run_until_complete(timed())

    return [Row(row, run(call)) for row, call in calls]


# -- Starlette and FastAPI (ASGI) -----------------------------------------------------------------
def starlette_rows(auth: ClerkAuth, token: str, batch: int, batches: int) -> list[Row]:
    """Rows for a plain Starlette app and a guarded one, called as ASGI apps."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from clerkguard.starlette import ClerkGuard, require_auth

    async def open_endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.method)

    @require_auth
    async def guarded_endpoint(request: Request) -> PlainTextResponse:
        assert request.auth.user_id
        return PlainTextResponse(request.method)

    plain = Starlette(routes=[Route("/open", open_endpoint)])
    guarded = Starlette(routes=[Route("/guarded", guarded_endpoint)])
    ClerkGuard(guarded, auth, manage_lifecycle=False)  # apps called directly see no lifespan events
    return _asgi_rows("starlette", plain, guarded, token, batch, batches)


def fastapi_rows(auth: ClerkAuth, token: str, batch: int, batches: int) -> list[Row]:
    """Rows for a plain FastAPI app, the decorator, and the dependency (``fastapi depends``)."""
    from fastapi import Depends, FastAPI, Request
    from starlette.requests import HTTPConnection

    from clerkguard import Session
    from clerkguard.fastapi import ClerkGuard, require_auth, requires_auth

    # This module postpones annotations, and FastAPI resolves them in the module's
    # globals, where these lazily imported names are not: real types are set instead.
    signed_in = requires_auth()

    async def open_endpoint(request: Request) -> str:
        return request.method

    async def guarded_endpoint(request: Request) -> str:
        assert request.auth.user_id
        return request.method

    # The dependency form; `request` too, so only the dependency differs from /open.
    async def depends_endpoint(request: Request, session: Session = Depends(signed_in)) -> str:  # noqa: B008
        assert session.user_id
        return request.method

    # FastAPI's own price of one async dependency, for scale: a no-op one.
    async def noop_dependency(connection: HTTPConnection) -> HTTPConnection:
        return connection

    async def noop_endpoint(request: Request, connection: Any = Depends(noop_dependency)) -> str:  # noqa: B008
        return request.method

    for endpoint in (open_endpoint, guarded_endpoint, depends_endpoint, noop_dependency, noop_endpoint):
        hints = {"request": Request, "session": Session, "connection": HTTPConnection, "return": str}
        endpoint.__annotations__.update({k: v for k, v in hints.items() if k in endpoint.__annotations__})
    plain = FastAPI(openapi_url=None)
    plain.get("/open")(open_endpoint)
    guarded = FastAPI(openapi_url=None)
    ClerkGuard(guarded, auth, manage_lifecycle=False)
    guarded.get("/guarded")(require_auth(guarded_endpoint))
    guarded.get("/depends")(depends_endpoint)
    plain.get("/noop")(noop_endpoint)
    extra = [("fastapi depends", guarded, "/depends"), ("fastapi noop-depends", plain, "/noop")]
    return _asgi_rows("fastapi", plain, guarded, token, batch, batches, extra)


# -- Django (WSGI and ASGI) ------------------------------------------------------------------
def _django_project(auth: ClerkAuth) -> Any:
    """A minimal Django project (no middleware, no apps) with open and guarded views, sync and async."""
    import logging
    import types

    import django
    from django.conf import settings
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    from clerkguard.django import require_auth

    def open_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(request.method)

    @require_auth
    def guarded_view(request: HttpRequest) -> HttpResponse:
        assert request.auth.user_id  # type: ignore[attr-defined]
        return HttpResponse(request.method)

    async def aopen_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(request.method)

    @require_auth
    async def aguarded_view(request: HttpRequest) -> HttpResponse:
        assert request.auth.user_id  # type: ignore[attr-defined]
        return HttpResponse(request.method)

    urls = types.ModuleType("clerkguard_bench_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("open", open_view),
        path("guarded", guarded_view),
        path("aopen", aopen_view),
        path("aguarded", aguarded_view),
    ]
    if not settings.configured:
        settings.configure(
            ROOT_URLCONF=urls, ALLOWED_HOSTS=["*"], MIDDLEWARE=[], INSTALLED_APPS=[], CLERK_AUTH=auth
        )
        django.setup()
    logging.getLogger("django.request").setLevel(logging.ERROR)  # the 401 sanity check is expected
    return urls


def django_rows(auth: ClerkAuth, token: str, batch: int, batches: int) -> list[Row]:
    """Rows for Django's WSGI handler: a plain sync view and a guarded one, same project."""
    import io

    _django_project(auth)
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()

    def wsgi_caller(path: str, authorization: str | None) -> Callable[[], str]:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
        }
        if authorization is not None:
            environ["HTTP_AUTHORIZATION"] = authorization
        status: list[str] = []

        def start_response(code: str, response_headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return None

        def call() -> str:
            status.clear()
            body = handler({**environ, "wsgi.input": io.BytesIO(b"")}, start_response)
            try:
                b"".join(body)
            finally:
                body.close()
            return status[0]

        return call

    bearer = f"Bearer {token}"  # same header on both (see flask_rows)
    open_call, guarded_call = wsgi_caller("/open", bearer), wsgi_caller("/guarded", bearer)
    if not (open_call().startswith("200") and guarded_call().startswith("200")):
        raise SystemExit("django: the views do not answer 200")
    if not wsgi_caller("/guarded", None)().startswith("401"):
        raise SystemExit("django: the guarded view answered a request without a token")

    def run(call: Callable[[], str]) -> Callable[[int], None]:
        def batch_of(n: int) -> None:
            for _ in range(n):
                call()

        return batch_of

    return [
        Row("django open", lambda: _per_call(run(open_call), batch, batches)),
        Row("django guarded", lambda: _per_call(run(guarded_call), batch, batches)),
    ]


def django_async_rows(auth: ClerkAuth, token: str, batch: int, batches: int) -> list[Row]:
    """Rows for Django's ASGI request path: a plain async view and a guarded one (``averify``)."""
    import io

    _django_project(auth)
    from django.core.handlers.asgi import ASGIHandler, ASGIRequest

    handler = ASGIHandler()

    def asgi_caller(path: str, headers: list[tuple[bytes, bytes]]) -> Callable[[], Any]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }

        async def call() -> int:
            # What ASGIHandler.handle does per request, minus its thread hops
            # (request_started/finished signals via sync_to_async, ~1 ms of
            # noise that would drown a few µs): request object, middleware,
            # URL resolution, the view.
            request = ASGIRequest(dict(scope), io.BytesIO(b""))
            response = await handler.get_response_async(request)
            return int(response.status_code)

        return call

    bearer = [(b"authorization", f"Bearer {token}".encode())]
    open_call, guarded_call = asgi_caller("/aopen", bearer), asgi_caller("/aguarded", bearer)
    loop = asyncio.new_event_loop()
    if loop.run_until_complete(open_call()) != 200 or loop.run_until_complete(guarded_call()) != 200:
        raise SystemExit("django-async: the views do not answer 200")
    if loop.run_until_complete(asgi_caller("/aguarded", [])()) != 401:
        raise SystemExit("django-async: the guarded view answered a request without a token")

    def run(call: Callable[[], Any]) -> Callable[[], list[float]]:
        async def timed() -> list[float]:
            clock = time.perf_counter_ns
            out: list[float] = []
            gc.disable()
            try:
                for _ in range(batches):
                    start = clock()
                    for _ in range(batch):
                        await call()
                    out.append((clock() - start) / batch / 1000)
            finally:
                gc.enable()
            return out

        return lambda: loop.run_until_complete(timed())

    return [
        Row("django-async open", run(open_call)),
        Row("django-async guarded", run(guarded_call)),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of ~20")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 15
    batch, batches = 20, (10 if args.quick else 25)

    with LocalIssuer() as issuer, issuer.auth() as auth:
        token = issuer.mint(expires_in=3600, org_role="admin")
        auth.verify(token)  # keys fetched, token cached: verification is the repeated path

        def verify_batch(n: int) -> None:
            for _ in range(n):
                auth.verify(token)

        verify_row = Row("verify (repeated token)", lambda: _per_call(verify_batch, 200, batches))
        rows = [verify_row]
        missing: list[str] = []
        builders = (
            ("flask", flask_rows),
            ("litestar", litestar_rows),
            ("starlette", starlette_rows),
            ("fastapi", fastapi_rows),
            ("django", django_rows),
            ("django-async", django_async_rows),
        )
        for name, build in builders:
            try:
                rows += build(auth, token, batch, batches)
            except ImportError:
                missing.append(name)
        for r in range(rounds):
            shift = r % len(rows)
            for row in rows[shift:] + rows[:shift]:
                row.samples.extend(row.measure())
                gc.collect()

    medians = {row.name: row.median for row in rows}
    verify_us = medians["verify (repeated token)"]
    print(f"clerkguard guard overhead per request ({rounds} rounds x {batches} batches x {batch} requests)")
    header = f"{'open µs':>9} {'guarded µs':>11} {'overhead':>9} {'- verify':>9} {'target':>8}"
    print(f"{'framework':<16} {header}  result")
    all_met = True
    # (label, framework, baseline row, guarded row): FastAPI's dependency form is measured
    # against the plain app, and against the same app with a no-op dependency.
    compared = [
        ("flask", "flask", "flask open", "flask guarded"),
        ("litestar", "litestar", "litestar open", "litestar guarded"),
        ("starlette", "starlette", "starlette open", "starlette guarded"),
        ("fastapi", "fastapi", "fastapi open", "fastapi guarded"),
        ("fastapi-Depends", "fastapi", "fastapi open", "fastapi depends"),
        ("django", "django", "django open", "django guarded"),
        ("django-async", "django-async", "django-async open", "django-async guarded"),
        ("vs-noop-Depends", "fastapi", "fastapi noop-depends", "fastapi depends"),
    ]
    for label, framework, open_row, guarded_row in compared:
        if framework in missing:
            print(f"{label:<16} not installed")
            continue
        open_us, guarded_us = medians[open_row], medians[guarded_row]
        overhead = guarded_us - open_us
        net = overhead - verify_us
        met = net <= TARGET_US
        all_met = all_met and met
        print(
            f"{label:<16} {open_us:>9.2f} {guarded_us:>11.2f} {overhead:>9.2f} {net:>9.2f} "
            f"{f'<={TARGET_US:g}':>8}  {'PASS' if met else 'MISS'}"
        )
    print(f"verify (repeated token): {verify_us:.2f} µs, subtracted from the overhead")
    if "fastapi" not in missing:
        print("vs-noop-Depends: Depends(requires_auth()) against a no-op async dependency")
    return 1 if args.check and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
