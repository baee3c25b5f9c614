"""Load benchmark: a guarded route against the same open route, under real servers.

Run ``make bench-load`` (or ``python benchmarks/load.py``; ``--quick`` for a
short pass). For every framework in :data:`FRAMEWORKS` whose modules are
installed, the app of ``benchmarks/load_apps.py`` (identical handlers
returning ``{"ok": true}``, the guarded ones under a plain ``@require_auth``,
registered as ``/open``, ``/guarded``, ``/guarded-2``, ``/open-2``) is started
under its real server on loopback and measured with ``wrk`` (1 thread, 16
connections):

* **repeated**: every request carries the same valid token (served from the
  verified-token cache after the first request);
* **rotating**: requests cycle through a few hundred distinct valid tokens
  (a ``wrk`` Lua script; each is verified once, then cached).

Every run receives the same ``Authorization`` header, so parsing it is the
framework's cost either way. Routers that try routes in order (Starlette,
FastAPI, Django) charge each route one failed match per route registered
before it, so a round runs all four paths: the open route at positions 1 and 4,
the guarded one at 2 and 3, equal sums, in the order ``/open``, ``/guarded``,
``/guarded-2``, ``/open-2`` (even rounds) or ``/guarded``, ``/open``,
``/open-2``, ``/guarded-2`` (odd rounds): each kind's two runs are centred on
the same instant of the round, so a steady drift of the machine cancels too.
A kind's round figures pool its two runs: requests per second is their mean,
server CPU per request their total CPU over their total requests. Each case
runs a warm-up of all four paths first; the table shows the median over
rounds of each kind's requests per second and the median of the per-round
guarded/open ratios (the target is 0.95).

Then, on a freshly started server:

* **cold**: how many JWKS fetches the server made at start, how many after
  16 concurrent first requests to the guarded route (each with a new token),
  the slowest of those first requests and the median of warm requests;
* **lag** (async servers): a probe sends guarded requests back to back on one
  keep-alive connection while a request with an unknown ``kid`` makes the
  server refetch the JWKS, which the local issuer answers after a delay. The
  probe's slowest request during that fetch, against its slowest one in an
  equal window without a fetch, shows whether the event loop stalled.

Everything runs on 127.0.0.1. Without ``wrk`` (``--loader python``) a single
Python keep-alive client replaces it: fine for checking that the pieces work,
far too slow to measure a fast server. Exit status 0 whatever the numbers
(``--check``: 1 when a ratio misses the target).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import importlib.util
import itertools
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load_apps import GUARDED_PATHS, OPEN_PATHS

from clerkguard.testing import LocalIssuer

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
#: Guarded throughput must be at least this fraction of the open route's.
TARGET_RATIO = 0.95
#: An async server's requests must never wait longer than this for a key refresh.
LAG_TARGET_MS = 1.0
#: ``jwks_cooldown`` of the cold/lag server: lets the lag case trigger a refetch twice a second.
COOLDOWN = 0.5

# Clerk-shaped claims (v2 `o` with a permission bitmask, `fea`, `pla`), as in verify.py.
TOKEN_OPTIONS: dict[str, Any] = {
    "org_id": "org_2exampleorganizationid00",
    "org_role": "admin",
    "org_slug": "acme",
    "permissions": ["org:dashboard:manage", "org:dashboard:read", "org:teams:read"],
    "features": ["dashboard", "teams"],
    "plan": "pro",
    "expires_in": 3600,  # valid for the whole run
}


# -- the frameworks -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Framework:
    """One row of the table: an app of ``load_apps.py`` under one server."""

    name: str
    """The row's name (``--frameworks``)."""
    server: str
    """What serves it, for the table."""
    command: Callable[[int], list[str]]
    """``port -> argv`` after ``python -m``."""
    requires: tuple[str, ...]
    """Modules that must be importable (the clerkguard adapter, the framework, the server)."""
    event_loop: bool = True
    """An async server: measure event-loop lag during a key refresh."""

    def available(self) -> bool:
        """True when every required module is installed."""
        return all(importlib.util.find_spec(module) is not None for module in self.requires)

    def versions(self) -> str:
        """Distribution versions of the framework and the server."""
        out = []
        for module in self.requires[1:]:
            try:
                out.append(f"{module} {importlib.metadata.version(module)}")
            except importlib.metadata.PackageNotFoundError:
                out.append(module)
        return ", ".join(out)


def _gunicorn(app: str) -> Callable[[int], list[str]]:
    return lambda port: ["gunicorn", "-w", "1", "-k", "sync", "-b", f"{HOST}:{port}", app]


def _uvicorn(app: str, *options: str) -> Callable[[int], list[str]]:
    return lambda port: [
        *("uvicorn", "--host", HOST, "--port", str(port)),
        *("--no-access-log", "--log-level", "warning", *options, app),
    ]


#: The table. Adding a framework: a builder in load_apps.py and one entry here.
FRAMEWORKS: tuple[Framework, ...] = (
    Framework(
        "flask",
        "gunicorn, 1 sync worker",
        _gunicorn("load_apps:flask"),
        ("clerkguard.flask", "flask", "gunicorn"),
        event_loop=False,
    ),
    Framework(
        "quart",
        "hypercorn",
        lambda port: ["hypercorn", "-b", f"{HOST}:{port}", "load_apps:build('quart')"],
        ("clerkguard.quart", "quart", "hypercorn"),
    ),
    Framework(
        "litestar",
        "uvicorn",
        _uvicorn("load_apps:litestar"),
        ("clerkguard.litestar", "litestar", "uvicorn"),
    ),
    Framework(
        "litestar-request",
        "uvicorn, handlers take request",
        _uvicorn("load_apps:litestar_request"),
        ("clerkguard.litestar", "litestar", "uvicorn"),
    ),
    Framework(
        "sanic",
        "sanic, single process",
        lambda port: [
            *("sanic", "load_apps:sanic", "-H", HOST, "-p", str(port)),
            *("--single-process", "--no-access-logs", "--no-motd"),
        ],
        ("clerkguard.sanic", "sanic"),
    ),
    Framework(
        "starlette",
        "uvicorn",
        _uvicorn("load_apps:starlette"),
        ("clerkguard.starlette", "starlette", "uvicorn"),
    ),
    Framework(
        "fastapi",
        "uvicorn",
        _uvicorn("load_apps:fastapi"),
        ("clerkguard.fastapi", "fastapi", "uvicorn"),
    ),
    Framework(
        "django",
        "gunicorn, 1 sync worker",
        _gunicorn("load_apps:django"),
        ("clerkguard.django", "django", "gunicorn"),
        event_loop=False,
    ),
    Framework(
        "django-asgi",
        "uvicorn, async views",
        # Django's ASGI handler has no lifespan support: uvicorn would log that it is missing.
        _uvicorn("load_apps:django_asgi", "--lifespan", "off"),
        ("clerkguard.django", "django", "uvicorn"),
    ),
)


# -- servers ---------------------------------------------------------------------------------------
def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def get(port: int, path: str, token: str | None = None, timeout: float = 10.0) -> int:
    """Status of one ``GET`` on a new connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


class Server:
    """A framework's real server in its own process group, on a free loopback port."""

    def __init__(self, framework: Framework, env: dict[str, str], log_dir: Path) -> None:
        self.framework = framework
        self.port = free_port()
        self.log = log_dir / f"{framework.name}-{self.port}.log"
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        argv = [sys.executable, "-m", *self.framework.command(self.port)]
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                argv, cwd=HERE, env=self._env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                if get(self.port, "/open", timeout=2) == 200:
                    return self
            time.sleep(0.05)
        self.__exit__()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.framework.name}: server did not answer GET /open:\n{tail}")

    @property
    def pgid(self) -> int:
        """The server's process group (its own session: the server and its workers)."""
        assert self._proc is not None
        return self._proc.pid

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: its own group
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (Linux ``/proc``).

    Throughput on a shared machine moves with whatever else runs; the server's
    own CPU time per request barely does, so it is measured alongside.
    """
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:  # exited meanwhile
            continue
        # After the command: state, ppid, pgrp (index 2) ... utime, stime (indexes 11, 12).
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# -- load generators -------------------------------------------------------------------------------
@dataclass
class Run:
    """One measured run of one route."""

    rps: float
    requests: int
    bad: int
    """Responses other than 200, plus socket errors."""
    cpu_seconds: float = math.nan
    """CPU time (user + system) the server's processes used during the run."""

    @property
    def cpu_us(self) -> float:
        """Server CPU µs per request."""
        return self.cpu_seconds / self.requests * 1e6 if self.requests else math.nan

    @classmethod
    def pooled(cls, runs: Sequence[Run]) -> Run:
        """Runs of one kind in one round as one: mean rps, summed requests, failures and CPU."""
        return cls(
            statistics.fmean(r.rps for r in runs),
            sum(r.requests for r in runs),
            sum(r.bad for r in runs),
            sum(r.cpu_seconds for r in runs),
        )


class Loader:
    """Runs load against one URL for a while and reports requests per second."""

    name = "?"

    def run(self, port: int, path: str, tokens: Sequence[str], duration: float) -> Run:
        """Load ``path`` for ``duration`` seconds, cycling through ``tokens`` as Bearer tokens."""
        raise NotImplementedError


class Wrk(Loader):
    """``wrk`` with one thread and a few keep-alive connections."""

    def __init__(self, executable: str, connections: int, work_dir: Path) -> None:
        self.executable = executable
        self.connections = connections
        self.work_dir = work_dir
        version = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False)
        first = (version.stdout or version.stderr).splitlines()
        self.name = f"{first[0].split(' [')[0] if first else 'wrk'}, 1 thread, {connections} connections"
        self._scripts: dict[tuple[str, ...], Path] = {}

    def _script(self, tokens: Sequence[str]) -> Path:
        key = tuple(tokens)
        if key not in self._scripts:
            path = self.work_dir / f"tokens-{len(self._scripts)}.lua"
            entries = ",\n".join(f'  "Bearer {t}"' for t in tokens)
            path.write_text(
                "-- Cycle through distinct valid tokens, one per request.\n"
                f"local tokens = {{\n{entries}\n}}\n"
                "local i = 0\n"
                "request = function()\n"
                "  i = i % #tokens + 1\n"
                '  return wrk.format(nil, nil, {["Authorization"] = tokens[i]})\n'
                "end\n"
            )
            self._scripts[key] = path
        return self._scripts[key]

    def run(self, port: int, path: str, tokens: Sequence[str], duration: float) -> Run:
        """One ``wrk`` run (whole seconds, at least one)."""
        seconds = max(1, round(duration))
        argv = [self.executable, "-t1", f"-c{self.connections}", f"-d{seconds}s", "--timeout", "5s"]
        if len(tokens) == 1:
            argv += ["-H", f"Authorization: Bearer {tokens[0]}"]
        else:
            argv += ["-s", str(self._script(tokens))]
        result = subprocess.run(
            [*argv, f"http://{HOST}:{port}{path}"], capture_output=True, text=True, check=False
        )
        out = result.stdout
        rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
        total = re.search(r"(\d+) requests in", out)
        if result.returncode != 0 or rps is None or total is None:
            raise RuntimeError(f"wrk failed ({result.returncode}): {out}{result.stderr}")
        bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if errors:
            # A sync worker closes every connection: wrk counts those closes as read errors.
            bad += int(errors[1]) + int(errors[3]) + int(errors[4])
        return Run(float(rps[1]), int(total[1]), bad)


class PythonLoop(Loader):
    """One keep-alive ``http.client`` connection in a loop (no wrk needed; slow)."""

    name = "python http.client loop, 1 connection (NOT a load test: checks the pieces only)"

    def run(self, port: int, path: str, tokens: Sequence[str], duration: float) -> Run:
        """Requests back to back for ``duration`` seconds."""
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        headers = itertools.cycle([{"Authorization": f"Bearer {t}"} for t in tokens])
        count = bad = 0
        clock = time.perf_counter
        start = clock()
        end = start + duration
        try:
            while clock() < end:
                conn.request("GET", path, headers=next(headers))
                response = conn.getresponse()
                response.read()  # a "Connection: close" answer reconnects on the next request
                count += 1
                bad += response.status != 200
        finally:
            conn.close()
        return Run(count / (clock() - start), count, bad)


# -- measurements -------------------------------------------------------------------------------------
@dataclass
class Case:
    """Interleaved rounds of both kinds of route with one set of tokens."""

    name: str
    open: list[Run] = field(default_factory=list)
    """Per round: the open route's runs at both positions, pooled (:meth:`Run.pooled`)."""
    guarded: list[Run] = field(default_factory=list)
    """Per round: the guarded route's runs at both positions, pooled."""

    def median(self, runs: list[Run]) -> float:
        """Median requests per second."""
        return statistics.median(r.rps for r in runs)

    @property
    def ratios(self) -> list[float]:
        """Guarded/open per round (each round ran both kinds, interleaved)."""
        return [g.rps / o.rps for o, g in zip(self.open, self.guarded, strict=True) if o.rps]

    @property
    def bad(self) -> int:
        """Failed requests (non-200 or socket errors) over all runs."""
        return sum(r.bad for r in self.open + self.guarded)

    def cpu_us(self, runs: list[Run]) -> float:
        """Median server CPU µs per request."""
        return statistics.median(r.cpu_us for r in runs)

    @property
    def cpu_ratios(self) -> list[float]:
        """Open/guarded CPU per request, per round: the throughput ratio of a CPU-bound server."""
        return [o.cpu_us / g.cpu_us for o, g in zip(self.open, self.guarded, strict=True) if g.cpu_us]


def round_order(r: int) -> tuple[str, ...]:
    """The paths of round ``r``: every path once, each kind centred on the round's middle.

    Even rounds run open, guarded, guarded, open (positions 1, 2, 3, 4), odd
    rounds guarded, open, open, guarded (2, 1, 4, 3): both kinds pay the same
    routing cost (1 + 4 = 2 + 3) and sit at the same mean time in the round,
    and which kind goes first alternates.
    """
    (open_1, open_4), (guarded_2, guarded_3) = OPEN_PATHS, GUARDED_PATHS
    if r % 2 == 0:
        return (open_1, guarded_2, guarded_3, open_4)
    return (guarded_2, open_1, open_4, guarded_3)


def measure_case(
    name: str, loader: Loader, server: Server, tokens: Sequence[str], duration: float, rounds: int
) -> Case:
    """Warm every path up, then run the rounds of :func:`round_order`."""
    case = Case(name)
    for path in (*OPEN_PATHS, *GUARDED_PATHS):
        loader.run(server.port, path, tokens, min(duration, 1.0))  # warm-up: caches, connections
    for r in range(rounds):
        runs: dict[str, Run] = {}
        for path in round_order(r):
            cpu_before = group_cpu_seconds(server.pgid)
            run = loader.run(server.port, path, tokens, duration)
            run.cpu_seconds = group_cpu_seconds(server.pgid) - cpu_before
            runs[path] = run
        case.open.append(Run.pooled([runs[path] for path in OPEN_PATHS]))
        case.guarded.append(Run.pooled([runs[path] for path in GUARDED_PATHS]))
    return case


@dataclass
class Cold:
    """A freshly started server's first guarded requests."""

    fetches_at_start: int
    fetches_after: int
    statuses: list[int]
    slowest_first_ms: float
    warm_ms: float


def _timed_get(port: int, path: str, token: str) -> tuple[int, float]:
    start = time.perf_counter()
    status = get(port, path, token)
    return status, (time.perf_counter() - start) * 1000


def measure_cold(server: Server, issuer: LocalIssuer, concurrency: int) -> Cold:
    """``concurrency`` simultaneous first requests, each with a token never seen."""
    at_start = issuer.request_count
    tokens = [issuer.mint(**TOKEN_OPTIONS) for _ in range(concurrency + 20)]
    barrier = threading.Barrier(concurrency)
    results: list[tuple[int, float]] = [(0, 0.0)] * concurrency

    def first(i: int) -> None:
        barrier.wait()
        results[i] = _timed_get(server.port, "/guarded", tokens[i])

    threads = [threading.Thread(target=first, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = issuer.request_count
    warm = [_timed_get(server.port, "/guarded", token)[1] for token in tokens[concurrency:]]
    slowest = max(ms for _, ms in results)
    return Cold(at_start, after, [s for s, _ in results], slowest, statistics.median(warm))


@dataclass
class Lag:
    """Probe latencies without and during JWKS refetches that the issuer answers slowly."""

    baseline_ms: list[float] = field(default_factory=list)
    during_ms: list[float] = field(default_factory=list)
    trigger_statuses: list[int] = field(default_factory=list)
    fetches: int = 0

    @property
    def stall_ms(self) -> float:
        """How much longer the slowest probe request took during the fetches than without them."""
        return max(self.during_ms) - max(self.baseline_ms)

    @property
    def met(self) -> bool:
        """Every refetch happened once, answered 200, and never stalled the probe."""
        triggers = len(self.trigger_statuses)
        return (
            self.stall_ms <= LAG_TARGET_MS
            and self.trigger_statuses == [200] * triggers
            and self.fetches == triggers
        )

    @staticmethod
    def stats(values: list[float]) -> str:
        """``p50/p99/max`` in ms."""
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"{statistics.median(ordered):.2f}/{p99:.2f}/{ordered[-1]:.2f}"


def _append_get(statuses: list[int], port: int, token: str) -> None:
    statuses.append(get(port, "/guarded", token))


def thread_done(thread: threading.Thread) -> Callable[[], bool]:
    """``() -> True`` once ``thread`` has finished."""
    return lambda: not thread.is_alive()


def measure_lag(
    server: Server, issuer: LocalIssuer, fetch_delay: float, triggers: int, cooldown: float
) -> Lag:
    """Probe the guarded route while requests with a new ``kid`` wait for slow JWKS fetches.

    Each trigger rotates the issuer's key to a ``kid`` the server has never
    seen (the old key stays published, so the probe's token stays valid) and
    sends one request signed with it: the server must refetch, and the issuer
    answers ``fetch_delay`` late. Before each trigger the probe runs alone
    for as long, as the baseline.
    """
    probe_token = issuer.mint(**TOKEN_OPTIONS)
    if get(server.port, "/guarded", probe_token) != 200:
        raise RuntimeError("lag: the probe token is refused")
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    headers = {"Authorization": f"Bearer {probe_token}"}

    def probe_until(done: Callable[[], bool]) -> list[float]:
        out = []
        clock = time.perf_counter
        while not done():
            start = clock()
            conn.request("GET", "/guarded", headers=headers)
            response = conn.getresponse()
            response.read()
            out.append((clock() - start) * 1000)
            if response.status != 200:
                raise RuntimeError(f"lag: probe answered {response.status}")
        return out

    def probe_for(seconds: float) -> list[float]:
        end = time.monotonic() + seconds
        return probe_until(lambda: time.monotonic() >= end)

    lag = Lag()
    try:
        probe_for(0.2)  # connection open, caches warm
        for _ in range(triggers):
            # Past the token-triggered refetch cooldown (of the cold burst or the previous trigger).
            probe_for(max(0.0, cooldown + 0.1 - fetch_delay))
            lag.baseline_ms += probe_for(fetch_delay)
            issuer.rotate(new_kid=f"{issuer.kid}n")
            new_kid_token = issuer.mint(**TOKEN_OPTIONS)
            issuer.set_fault(delay=fetch_delay)
            before = issuer.request_count
            statuses: list[int] = []
            thread = threading.Thread(target=_append_get, args=(statuses, server.port, new_kid_token))
            thread.start()
            try:
                while issuer.request_count == before and thread.is_alive():  # until the fetch starts
                    time.sleep(0.0005)
                lag.during_ms += probe_until(thread_done(thread))
            finally:
                thread.join()
                issuer.set_fault()
            lag.trigger_statuses += statuses or [0]
            lag.fetches += issuer.request_count - before
    finally:
        conn.close()
    return lag


# -- the run ------------------------------------------------------------------------------------------
@dataclass
class Result:
    """Everything measured for one framework."""

    framework: Framework
    cases: list[Case] = field(default_factory=list)
    cold: Cold | None = None
    lag: Lag | None = None
    error: str | None = None


def server_env(issuer: LocalIssuer) -> dict[str, str]:
    """The server's environment: this process's, pointed at ``issuer``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env.update(issuer.env())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_guarding(port: int, token: str) -> None:
    """Every guarded path must really guard, every open one stay open, and the token pass.

    Checked before timing means anything: with and without the token on each path.
    """
    expected = {path: (200, 200) for path in OPEN_PATHS} | {path: (200, 401) for path in GUARDED_PATHS}
    answered = {path: (get(port, path, token), get(port, path)) for path in expected}
    if answered != expected:
        raise RuntimeError(f"(with token, anonymous) answered {answered}, expected {expected}")


def bench_framework(framework: Framework, loader: Loader, args: argparse.Namespace, log_dir: Path) -> Result:
    """Throughput cases on one server, then cold and lag on a fresh one."""
    result = Result(framework)
    with LocalIssuer() as issuer:
        env = server_env(issuer)
        token = issuer.mint(**TOKEN_OPTIONS)
        rotating = [issuer.mint(user_id=f"user_bench{i:05d}", **TOKEN_OPTIONS) for i in range(args.tokens)]
        cases = {"repeated": [token], "rotating": rotating}
        wanted = [name for name in args.cases if name in cases]
        if wanted:
            with Server(framework, env, log_dir) as server:
                check_guarding(server.port, token)
                for name in wanted:
                    result.cases.append(
                        measure_case(name, loader, server, cases[name], args.duration, args.rounds)
                    )
        if "cold" in args.cases or "lag" in args.cases:
            issuer.reset_count()
            with Server(framework, env | {"CLERKGUARD_BENCH_COOLDOWN": str(COOLDOWN)}, log_dir) as server:
                if "cold" in args.cases:
                    result.cold = measure_cold(server, issuer, args.cold_concurrency)
                if "lag" in args.cases and framework.event_loop:
                    result.lag = measure_lag(server, issuer, args.fetch_delay, args.triggers, COOLDOWN)
    return result


def _fmt_range(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def report(results: list[Result], loader: Loader, args: argparse.Namespace, missing: list[str]) -> bool:
    """Print the tables; True when every measured ratio met the target."""
    print(
        f"clerkguard load benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{loader.name}; {args.rounds} interleaved rounds per case of one {args.duration:g} s run "
        f"per path ({', '.join(round_order(0))})"
    )
    all_met = True
    print()
    print(
        "throughput: requests/s and guarded/open ratio (median of rounds; range); server CPU µs per\n"
        "request and the open/guarded CPU ratio (the throughput ratio of a CPU-bound server, steady\n"
        "on a busy machine); `guard µs` = guarded - open CPU per request. Target on the CPU ratio."
    )
    print(f"{'framework':<16} {'case':<9} {'open rps':>8} {'guarded':>8} {'ratio':>6} {'range':>10} "
          f"{'open µs':>8} {'guarded':>8} {'ratio':>6} {'range':>10} {'guard µs':>8}  result")  # fmt: skip
    for result in results:
        fw = result.framework
        if result.error:
            print(f"{fw.name:<16} ERROR: {result.error}")
            all_met = False
            continue
        for case in result.cases:
            ratio = statistics.median(case.ratios) if case.ratios else math.nan
            cpu_ratio = statistics.median(case.cpu_ratios) if case.cpu_ratios else math.nan
            met = cpu_ratio >= TARGET_RATIO and case.bad == 0
            all_met = all_met and met
            verdict = "PASS" if met else "MISS"
            if case.bad:
                verdict = f"INVALID ({case.bad} failed requests)"
            open_us, guarded_us = case.cpu_us(case.open), case.cpu_us(case.guarded)
            open_rps, guarded_rps = case.median(case.open), case.median(case.guarded)
            print(
                f"{fw.name:<16} {case.name:<9} {open_rps:>8.0f} {guarded_rps:>8.0f} "
                f"{ratio:>6.3f} {_fmt_range(case.ratios):>10} {open_us:>8.1f} {guarded_us:>8.1f} "
                f"{cpu_ratio:>6.3f} {_fmt_range(case.cpu_ratios):>10} {guarded_us - open_us:>8.1f}  {verdict}"
            )
    print("servers: " + "; ".join(f"{r.framework.name}: {r.framework.server}" for r in results))
    colds = [r for r in results if r.cold is not None]
    if colds:
        print()
        print(f"cold start: {args.cold_concurrency} concurrent first requests to /guarded, each a new token")
        print(f"{'framework':<16} {'fetches at start':>16} {'after first requests':>21} "
              f"{'slowest first ms':>17} {'warm ms':>8}  statuses")  # fmt: skip
        for r in colds:
            c = r.cold
            assert c is not None
            statuses = ",".join(f"{s}x{c.statuses.count(s)}" for s in sorted(set(c.statuses)))
            print(
                f"{r.framework.name:<16} {c.fetches_at_start:>16} {c.fetches_after:>21} "
                f"{c.slowest_first_ms:>17.1f} {c.warm_ms:>8.2f}  {statuses}"
            )
    lags = [r for r in results if r.lag is not None]
    if lags:
        print()
        print(
            f"event-loop lag: probe latency on /guarded (cached token) while a new-kid request waits "
            f"for a JWKS fetch delayed {args.fetch_delay:g} s"
        )
        print(f"{'framework':<16} {'without fetch p50/p99/max':>26} {'during fetch p50/p99/max':>25} "
              f"{'stall ms':>9} {'fetches':>8} {'statuses':>9} {'target':>7}  result")  # fmt: skip
        for r in lags:
            lag = r.lag
            assert lag is not None
            statuses = ",".join(str(s) for s in lag.trigger_statuses)
            print(
                f"{r.framework.name:<16} {lag.stats(lag.baseline_ms):>26} {lag.stats(lag.during_ms):>25} "
                f"{lag.stall_ms:>9.2f} {lag.fetches:>8} {statuses:>9} {f'<={LAG_TARGET_MS:g}':>7}  "
                f"{'PASS' if lag.met else 'MISS'}"
            )
    print()
    print("versions: " + "; ".join(f"{r.framework.name}: {r.framework.versions()}" for r in results))
    if missing:
        print(f"not installed (skipped): {', '.join(missing)}")
    return all_met


def _cases(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = set(names) - {"repeated", "rotating", "cold", "lag"}
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"cases are repeated, rotating, cold, lag (got {value!r})")
    return names


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        number = kind(value)
        if not number > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {value!r}")
        return number

    return parse


@contextlib.contextmanager
def _work_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="clerkguard-load-") as name:
        yield Path(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="1 s runs, 2 rounds (~4 min in all, ~10 min without)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--frameworks", help="comma list (default: every installed one)")
    parser.add_argument("--cases", type=_cases, default=["repeated", "rotating", "cold", "lag"],
                        help="comma list of repeated, rotating, cold, lag (default: all)")  # fmt: skip
    parser.add_argument("--duration", type=_positive(float), help="seconds per run (default 1; wrk: whole s)")
    parser.add_argument("--rounds", type=_positive(int), help="interleaved rounds (default 7)")
    parser.add_argument("--connections", type=_positive(int), default=16, help="wrk connections (16)")
    parser.add_argument("--tokens", type=_positive(int), default=300, help="rotating tokens (300)")
    parser.add_argument("--cold-concurrency", type=_positive(int), default=16, help="first requests (16)")
    parser.add_argument("--fetch-delay", type=_positive(float), default=0.5, help="slow JWKS answer, s (0.5)")
    parser.add_argument("--triggers", type=_positive(int), help="refetches per lag case (default 3)")
    parser.add_argument("--loader", choices=("auto", "wrk", "python"), default="auto",
                        help="auto: wrk when installed, else the Python loop")  # fmt: skip
    args = parser.parse_args(argv)
    args.duration = args.duration or 1.0
    args.rounds = args.rounds or (2 if args.quick else 7)
    args.triggers = args.triggers or (1 if args.quick else 3)

    selected = FRAMEWORKS
    if args.frameworks:
        names = [n.strip() for n in args.frameworks.split(",") if n.strip()]
        known = {f.name for f in FRAMEWORKS}
        if not names or set(names) - known:
            parser.error(f"--frameworks: choose from {', '.join(sorted(known))}")
        selected = tuple(f for f in FRAMEWORKS if f.name in names)
    missing = [f.name for f in selected if not f.available()]
    selected = tuple(f for f in selected if f.available())

    with _work_dir() as work_dir:
        wrk = shutil.which("wrk")
        loader: Loader
        if args.loader == "wrk" or (args.loader == "auto" and wrk):
            if wrk is None:
                parser.error("wrk is not installed: apt-get install wrk (or make bench-load as root)")
            loader = Wrk(wrk, args.connections, work_dir)
        else:
            loader = PythonLoop()
            if args.loader == "auto":
                print("wrk not found: measuring with a Python loop (see `make bench-load`)", file=sys.stderr)
        results = []
        for framework in selected:
            print(f"... {framework.name} ({framework.server})", file=sys.stderr, flush=True)
            try:
                results.append(bench_framework(framework, loader, args, work_dir))
            except (RuntimeError, OSError) as exc:
                results.append(Result(framework, error=str(exc)))
        all_met = report(results, loader, args, missing)
    return 1 if args.check and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
