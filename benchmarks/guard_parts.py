"""What each piece of the guard costs under a real server (Starlette on uvicorn, wrk).

Run ``.venv/bin/python benchmarks/guard_parts.py`` (``--rounds``, ``--duration``;
~1 min). It backs the "why 0.95 is out of reach" profile in
``benchmarks/README.md`` with numbers anyone can reproduce.

One Starlette app, served by uvicorn, answers ``GET /p/{part}`` from a single
route, so every part pays the same routing; the endpoint runs one piece of the
guard's work on the request and returns the same ``{"ok": true}``:

* ``open``: nothing (the baseline);
* ``scan``: read the ``Authorization`` lines from the raw ASGI headers;
* ``token``: that, plus cut the token out of the line and hash it (what any
  cache keyed by the token pays for a new request string);
* ``lookup``: that, plus the verified-token cache lookup with its checks
  (``exp``/``nbf``, key generation, ``jwks_max_stale``);
* ``cached``: ``Guard.cached``, the guard's whole no-await decision;
* ``guard``: the ``@require_auth`` endpoint itself, called by the part
  endpoint (finding the request, deciding, storing ``request.auth``, one more
  coroutine).

Two more plain routes, ``/a`` then ``/b``, measure what one more route in
front costs (routers that try routes in order). Every request carries the
same valid token. Each part is measured in interleaved rounds (wrk, 1 thread,
16 connections); the table shows the server's CPU µs per request (from
``/proc``), the part's cost over ``open``, the same piece timed in-process
(``timeit``, no server) and their ratio: how much a microsecond of guard work
in-process costs the server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: The parts, in the table's order (``/p/<part>``).
PARTS = ("open", "scan", "token", "lookup", "cached", "guard")


def build_app() -> Any:
    """The measured app (uvicorn imports ``guard_parts:app``)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from clerkguard import ClerkAuth
    from clerkguard.starlette import ClerkGuard, require_auth

    body = {"ok": True}

    @require_auth
    async def guarded(request: Request) -> JSONResponse:
        return JSONResponse(body)

    pieces = part_functions(guarded)

    async def part(request: Request) -> JSONResponse:
        name = request.path_params["part"]
        if name == "guard":
            response: JSONResponse = await guarded(request)
            return response
        pieces[name](request)
        return JSONResponse(body)

    async def plain(request: Request) -> JSONResponse:
        return JSONResponse(body)

    routes = [Route("/p/{part}", part), Route("/a", plain), Route("/b", plain), Route("/open", plain)]
    app = Starlette(routes=routes)
    ClerkGuard(app, ClerkAuth())
    return app


def part_functions(guarded: Any) -> dict[str, Callable[[Any], object]]:
    """The sync pieces of the guard's work, by part name (``guard`` is the endpoint itself)."""
    guard = guarded.__clerkguard__
    adapter = guard.adapter
    accepts = guard.options.accepts_token

    def scan(request: Any) -> object:
        return adapter.header_values(request, "authorization")

    def token(request: Any) -> object:
        return hash(adapter.header_values(request, "authorization")[0][7:].strip())

    def lookup(request: Any) -> object:
        value = adapter.header_values(request, "authorization")[0][7:].strip()
        return adapter.auth_for(request)._cached(value, accepts)

    def nothing(request: Any) -> object:
        return None

    return {"open": nothing, "scan": scan, "token": token, "lookup": lookup, "cached": guard.cached}


def in_process(token: str, issuer_env: dict[str, str]) -> dict[str, float]:
    """µs per call of each piece on a request object, without a server."""
    import asyncio

    saved = {k: os.environ.get(k) for k in issuer_env}
    os.environ.update(issuer_env)
    try:
        app = build_app()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    route = app.router.routes[0]
    guarded = None
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/p/guard",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
        "app": app,
        "path_params": {"part": "guard"},
    }
    request = Request(scope)
    endpoint = route.endpoint
    # The guarded endpoint is the one the part endpoint closes over.
    for cell in endpoint.__closure__ or ():
        if hasattr(cell.cell_contents, "__clerkguard__"):
            guarded = cell.cell_contents
    assert guarded is not None
    pieces = part_functions(guarded)
    asyncio.run(guarded(request))  # verify once: every later call is the cached path

    def drive(coro: Any) -> None:
        try:
            coro.send(None)
        except StopIteration:
            pass

    async def plain(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    out: dict[str, float] = {}
    n = 50_000
    for name in PARTS:
        fn: Callable[[], object]
        if name == "guard":
            fn = lambda: drive(guarded(request))  # noqa: E731
        else:
            piece = pieces[name]
            fn = lambda piece=piece: piece(request)  # type: ignore[misc]  # noqa: E731
        out[name] = min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6
    out["guard"] -= min(timeit.repeat(lambda: drive(plain(request)), number=n, repeat=5)) / n * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    """Serve the app under uvicorn, load every part with wrk, print the table."""
    from load import (
        FRAMEWORKS,
        TOKEN_OPTIONS,
        Framework,
        Server,
        Wrk,
        _uvicorn,
        group_cpu_seconds,
        server_env,
    )

    from clerkguard.testing import LocalIssuer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--duration", type=int, default=1, help="seconds per run (1)")
    args = parser.parse_args(argv)
    executable = shutil.which("wrk")
    if executable is None:
        print("wrk is not installed: apt-get install wrk (or make bench-load as root)", file=sys.stderr)
        return 1
    starlette = next(f for f in FRAMEWORKS if f.name == "starlette")
    framework = Framework("parts", "uvicorn", _uvicorn("guard_parts:app"), starlette.requires)
    paths = [f"/p/{name}" for name in PARTS] + ["/a", "/b"]
    with LocalIssuer() as issuer, tempfile.TemporaryDirectory(prefix="clerkguard-parts-") as work:
        token = issuer.mint(**TOKEN_OPTIONS)
        wrk = Wrk(executable, 16, Path(work))
        cpu: dict[str, list[float]] = {path: [] for path in paths}
        with Server(framework, server_env(issuer), Path(work)) as server:

            def run(path: str, seconds: int) -> float:
                before = group_cpu_seconds(server.pgid)
                result = wrk.run(server.port, path, [token], seconds)
                if result.bad:
                    raise RuntimeError(f"{path}: {result.bad} failed requests")
                return (group_cpu_seconds(server.pgid) - before) / result.requests * 1e6

            for path in paths:
                run(path, 1)  # warm-up (and the one verification)
            for r in range(args.rounds):
                for path in paths if r % 2 == 0 else paths[::-1]:
                    cpu[path].append(run(path, args.duration))
        local = in_process(token, issuer.env())

    median = {path: statistics.median(values) for path, values in cpu.items()}
    base = median["/p/open"]
    print(f"pieces of the guard under uvicorn + wrk (Starlette), {args.rounds} rounds of {args.duration} s, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'part':<8} {'server CPU µs':>13} {'over open':>10} {'in-process µs':>14} {'x':>5}")
    for name in PARTS:
        value = median[f"/p/{name}"]
        extra = value - base
        inproc = local[name]
        factor = f"{extra / inproc:5.1f}" if name != "open" and inproc > 0.05 else "    -"
        print(f"{name:<8} {value:>13.1f} {extra:>10.1f} {inproc:>14.2f} {factor}")
    print(f"one more route in front (/b - /a): {median['/b'] - median['/a']:.1f} µs server CPU")
    print("in-process `guard`: the decorated endpoint minus the same endpoint undecorated")
    return 0


def __getattr__(name: str) -> Any:
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
