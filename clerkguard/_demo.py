"""``clerkguard demo``: the same requests against every framework, side by side.

Two modes:

* ``clerkguard demo`` (no files needed, works from ``pip install``): one
  [`LocalIssuer`][clerkguard.testing.LocalIssuer], the request table run through a
  [`Guard`][clerkguard.adapters.Guard] in-process.
* ``clerkguard demo --examples DIR`` (``make demo``): the same issuer serves
  its JWKS on loopback while the example apps in ``DIR``
  (``flask_app.py``, ``quart_app.py``, ``litestar_app.py``, ``sanic_app.py``,
  ``starlette_app.py``, ``fastapi_app.py``, the ``django_project`` package
  under WSGI and ASGI, each exposing ``app`` and configured only through
  ``CLERK_*`` variables) run under real servers (gunicorn, hypercorn,
  uvicorn, Sanic's own); every request
  goes over real HTTP, and the answers are printed as one table. The exit
  status is 1 if any framework disagrees with another or with the expected
  result.

Servers are started in their own process groups and always stopped (on
success, failure, Ctrl-C and SIGTERM). Nothing here imports the examples, so
the runner works from an installed package as long as ``DIR`` exists.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["FRAMEWORKS", "Case", "Framework", "build_cases", "run_examples", "run_in_process"]

#: The ``azp`` of the demo's tokens, and the only party the apps accept.
FRONTEND = "http://localhost:3000"
#: The user the good tokens belong to (the apps echo it on ``/protected``).
DEMO_USER = "user_demo"


@dataclass(frozen=True)
class Framework:
    """One example app and the server that runs it."""

    name: str
    module: str
    server: str

    @property
    def path(self) -> str:
        """The example's file, relative to the examples directory (``django_project/wsgi.py``)."""
        return self.module.replace(".", "/") + ".py"

    def command(self, port: int, examples: Path) -> list[str]:
        """The server command line for ``<module>:app`` on ``127.0.0.1:port``."""
        target = f"{self.module}:app"
        bind = f"127.0.0.1:{port}"
        py = [sys.executable, "-m"]
        if self.server == "gunicorn":
            return [*py, "gunicorn", "--bind", bind, "--workers", "1", "--log-level", "warning", target]
        if self.server == "hypercorn":
            # --workers 0: serve in this process (no spawned child to outlive its master).
            return [*py, "hypercorn", "--bind", bind, "--workers", "0", "--log-level", "warning", target]
        if self.server == "uvicorn":
            return [
                *py,
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--app-dir",
                str(examples),
                "--log-level",
                "warning",
                target,
            ]
        if self.server == "sanic":
            return [
                *py,
                "sanic",
                target,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--single-process",
                "--no-motd",
                "--no-access-logs",
            ]
        raise ValueError(f"unknown server {self.server!r}")


#: The frameworks, in table order.
FRAMEWORKS: tuple[Framework, ...] = (
    Framework("Flask", "flask_app", "gunicorn"),
    Framework("Quart", "quart_app", "hypercorn"),
    Framework("Litestar", "litestar_app", "uvicorn"),
    Framework("Sanic", "sanic_app", "sanic"),
    Framework("Starlette", "starlette_app", "uvicorn"),
    Framework("FastAPI", "fastapi_app", "uvicorn"),
    Framework("Django", "django_project.wsgi", "gunicorn"),
    Framework("Django", "django_project.asgi", "uvicorn"),
)


@dataclass(frozen=True)
class Case:
    """One request of the table and the answer every framework must give."""

    name: str
    path: str
    status: int
    reason: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)

    @property
    def expected(self) -> str:
        """The expected cell text: ``401 token-expired`` or ``200 ok``."""
        return f"{self.status} {self.reason or 'ok'}"


def build_cases(issuer: Any) -> list[Case]:
    """The demo's requests, with tokens freshly minted by ``issuer`` (a LocalIssuer)."""
    from joserfc.jwk import RSAKey

    from .testing import session_cookies

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    now = issuer.clock()
    good = issuer.mint(user_id=DEMO_USER, azp=FRONTEND)
    member = issuer.mint(user_id=DEMO_USER, azp=FRONTEND, org_role="member")
    admin = issuer.mint(user_id=DEMO_USER, azp=FRONTEND, org_role="admin")
    reader = issuer.mint(user_id=DEMO_USER, azp=FRONTEND, org_role="member", permissions=["org:reports:read"])
    expired = issuer.mint(user_id=DEMO_USER, azp=FRONTEND, issued_at=now - 3600)
    # Same kid, another key: what an attacker without the private key can do.
    forged = issuer.mint(user_id=DEMO_USER, azp=FRONTEND, key=RSAKey.generate_key(2048, private=True))
    wrong_azp = issuer.mint(user_id=DEMO_USER, azp="https://evil.example")
    return [
        Case("no token", "/protected", 401, "token-missing"),
        Case("good token", "/protected", 200, headers=bearer(good)),
        Case("session cookie", "/protected", 200, cookies=session_cookies(good)),
        Case("expired", "/protected", 401, "token-expired", headers=bearer(expired)),
        Case("forged signature", "/protected", 401, "token-invalid-signature", headers=bearer(forged)),
        Case("wrong azp", "/protected", 401, "token-invalid-authorized-party", headers=bearer(wrong_azp)),
        Case("garbage token", "/protected", 401, "token-malformed", headers=bearer("not-a-jwt")),
        Case(
            "Basic auth ignored", "/protected", 401, "token-missing", headers={"Authorization": "Basic eDp5"}
        ),
        Case("member on /admin", "/admin", 403, "authorization-denied", headers=bearer(member)),
        Case("admin on /admin", "/admin", 200, headers=bearer(admin)),
        Case("missing permission", "/perm", 403, "authorization-denied", headers=bearer(member)),
        Case("with permission", "/perm", 200, headers=bearer(reader)),
    ]


# -- the table ---------------------------------------------------------------------------------
def _cell(status: int, body: Any) -> str:
    if status == 200:
        user = body.get("user_id") if isinstance(body, dict) else None
        return "200 ok" if user in (None, DEMO_USER) else f"200 WRONG USER {user!r}"
    reason = body.get("reason") if isinstance(body, dict) else None
    return f"{status} {reason if isinstance(reason, str) else '(no JSON reason)'}"


def render(cases: Sequence[Case], columns: Sequence[str], cells: Mapping[tuple[str, str], str]) -> list[str]:
    """An aligned table; a cell that differs from the expected answer is marked ``*``."""
    header = ["request", "expected", *columns]
    rows = [header]
    for case in cases:
        row = [case.name, case.expected]
        for column in columns:
            got = cells.get((case.name, column), "-")
            row.append(got if got == case.expected else f"{got} *")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def verdict(cases: Sequence[Case], columns: Sequence[str], cells: Mapping[tuple[str, str], str]) -> list[str]:
    """Problems: cells that differ from the expectation or from each other (empty = all good)."""
    problems = []
    for case in cases:
        answers = {column: cells.get((case.name, column), "-") for column in columns}
        wrong = [f"{c} answered {a!r}" for c, a in answers.items() if a != case.expected]
        if wrong:
            # Every answer is held to the expectation, so agreeing on a wrong answer fails too.
            split = " (the frameworks disagree)" if len(set(answers.values())) > 1 else ""
            problems.append(f"{case.name}: expected {case.expected!r}{split}; " + "; ".join(wrong))
    return problems


# -- in-process mode --------------------------------------------------------------------------
def run_in_process() -> int:
    """The request table through one in-process [`Guard`][clerkguard.adapters.Guard] (no servers)."""
    from .adapters import Adapter, Guard, GuardOptions
    from .errors import AuthError
    from .rules import has_permission, has_role
    from .testing import LocalIssuer, cookie_header

    class DictAdapter(Adapter[dict[str, Any]]):
        """A request is a dict of lower-case headers and cookies."""

        def header(self, request: dict[str, Any], name: str) -> str | None:
            value: str | None = request["headers"].get(name.lower())
            return value

        def header_values(self, request: dict[str, Any], name: str) -> tuple[str, ...]:
            if name == "cookie":
                return (cookie_header(request["cookies"]),) if request["cookies"] else ()
            value = self.header(request, name)
            return () if value is None else (value,)

        def method(self, request: dict[str, Any]) -> str:
            return "GET"

    with LocalIssuer() as issuer:
        auth = issuer.auth(authorized_parties=[FRONTEND])
        adapter = DictAdapter(auth)
        guards = {
            "/protected": Guard(adapter, GuardOptions()),
            "/admin": Guard(adapter, GuardOptions(rules=(has_role("admin"),))),
            "/perm": Guard(adapter, GuardOptions(authorize=has_permission("org:reports:read"))),
        }
        cases = build_cases(issuer)
        column = "in-process Guard"
        cells = {}
        for case in cases:
            request = {"headers": {k.lower(): v for k, v in case.headers.items()}, "cookies": case.cookies}
            try:
                session = guards[case.path].check(request)
                cells[(case.name, column)] = _cell(200, {"user_id": getattr(session, "user_id", None)})
            except AuthError as error:
                cells[(case.name, column)] = _cell(error.status, error.to_dict())
        auth.close()
        print(f"clerkguard demo: local issuer {issuer.issuer}, requests checked in-process")
        print("(`clerkguard demo --examples DIR` runs the same table against real servers)\n")
    code = _report(cases, [column], cells)
    _next_steps(None)
    return code


def _next_steps(examples: Path | None) -> None:
    """Where to go after the demo: the example apps, the docs, a dev issuer for your own app."""
    print("\nNext:")
    if examples is not None:
        apps = sorted(p.name for p in examples.glob("*_app.py"))
        shown = ", ".join(apps) if apps else "the example apps"
        print(f"  - read the apps you just ran: {examples}/ ({shown})")
    else:
        print("  - `make demo` in a clone runs the same table against the example apps (examples/*_app.py)")
    print("  - the docs start at docs/index.md: a quickstart per framework, with its tests")
    print("    (`make docs` builds them into .site/)")
    print("  - try your own app without a Clerk account: a local issuer on loopback, and tokens for it:")
    print("      clerkguard dev-issuer --key-file dev-issuer.pem > .env.clerk &")
    print("      export $(cat .env.clerk)              # then start your app in this shell")
    print("      clerkguard mint --key-file dev-issuer.pem --role admin")


def _report(cases: Sequence[Case], columns: Sequence[str], cells: Mapping[tuple[str, str], str]) -> int:
    for line in render(cases, columns, cells):
        print(line)
    problems = verdict(cases, columns, cells)
    print()
    if problems:
        print(f"FAILED: {len(problems)} request(s) answered differently than expected (marked *):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    who = f"all {len(columns)} frameworks agree" if len(columns) > 1 else "every answer agrees"
    print(f"OK: {who} with the expected result on all {len(cases)} requests.")
    return 0


# -- servers ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Server:
    framework: Framework
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    _how: tuple[Path, Mapping[str, str]] = field(init=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.framework.name} ({self.framework.server})"

    def start(self, examples: Path, env: Mapping[str, str]) -> None:
        self._how = (examples, env)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                self.framework.command(self.port, examples),
                cwd=examples,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: the whole server (master and workers) is
                # stopped with one signal, and a terminal's Ctrl-C reaches only us.
                start_new_session=True,
            )

    def lost_its_port(self) -> bool:
        """The server exited because its port was taken in the meantime.

        Ports are picked free and handed over by number, so another process on
        a busy machine can take one first; that is worth one more try.
        """
        try:
            text = self.log.read_text(errors="replace").lower()
        except OSError:
            return False
        # uvicorn/hypercorn/Sanic: errno 98, EADDRINUSE; gunicorn: "Connection in use".
        return any(m in text for m in ("address already in use", "errno 98", "connection in use"))

    def restart_on_a_new_port(self) -> None:
        """Start again on a fresh port (after `lost_its_port`)."""
        self.stop()
        self.port = _free_port()
        self.start(*self._how)
        assert self.proc is not None
        _announce(self)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("      " + line for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server: Ctrl-C to its master first, then SIGKILL to the whole group.

        The master alone gets SIGINT (every one of these servers treats it as
        Ctrl-C and stops at once; gunicorn's SIGTERM would wait for busy
        workers), so it can stop and reap its own workers; whatever is left
        of the group after that is killed.
        """
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)


class _Interrupted(Exception):
    pass


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into an exception so ``finally`` blocks stop the servers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _app_env(issuer_env: Mapping[str, str], examples: Path) -> dict[str, str]:
    # Only the issuer's CLERK_* variables: a developer's real CLERK_SECRET_KEY or
    # CLERK_JWT_KEY would otherwise change where the apps look for keys.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env.update(issuer_env)
    env["CLERK_AUTHORIZED_PARTIES"] = FRONTEND
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(examples), os.environ.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _announce(server: _Server) -> None:
    assert server.proc is not None
    print(f"  {server.label:<22} pid {server.proc.pid:<7} http://127.0.0.1:{server.port}", flush=True)


def _wait_ready(servers: Sequence[_Server], deadline: float) -> list[str]:
    """Poll every server until it answers HTTP; return failures (empty = all ready)."""
    import httpx

    pending = list(servers)
    failures: list[str] = []
    retried: set[str] = set()
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while pending:
            for server in list(pending):
                assert server.proc is not None
                if server.proc.poll() is not None:
                    if server.label not in retried and server.lost_its_port():
                        retried.add(server.label)
                        server.restart_on_a_new_port()
                        continue
                    failures.append(f"{server.label} exited with status {server.proc.returncode}")
                    pending.remove(server)
                    continue
                try:
                    client.get(f"http://127.0.0.1:{server.port}/protected")
                except httpx.HTTPError:
                    continue
                pending.remove(server)
            if pending and time.monotonic() > deadline:
                failures += [f"{s.label} did not answer in time" for s in pending]
                break
            if pending:
                time.sleep(0.2)
    return failures


def _ask(servers: Sequence[_Server], cases: Sequence[Case]) -> dict[tuple[str, str], str]:
    import httpx

    cells: dict[tuple[str, str], str] = {}
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        for case in cases:
            for server in servers:
                url = f"http://127.0.0.1:{server.port}{case.path}"
                # Cookies go in a header: httpx's per-request cookies are deprecated.
                headers = dict(case.headers)
                if case.cookies:
                    headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in case.cookies.items())
                try:
                    response = client.get(url, headers=headers)
                except httpx.HTTPError as exc:
                    cells[(case.name, server.label)] = f"no answer ({type(exc).__name__})"
                    continue
                try:
                    body = response.json()
                except ValueError:
                    body = None
                cells[(case.name, server.label)] = _cell(response.status_code, body)
    return cells


def run_examples(examples: Path, *, allow_missing: bool = False, timeout: float = 45.0) -> int:
    """Run the example apps under real servers and print the comparison table."""
    from .testing import LocalIssuer

    examples = examples.resolve()
    present = [f for f in FRAMEWORKS if (examples / f.path).is_file()]
    missing = [f for f in FRAMEWORKS if f not in present]
    if missing and not allow_missing:
        for framework in missing:
            print(f"missing: {examples / framework.path} ({framework.name})", file=sys.stderr)
        print("the demo needs every example app (--allow-missing skips absent ones)", file=sys.stderr)
        return 1
    for framework in missing:
        print(f"skipping {framework.name}: {examples / framework.path} does not exist")
    if not present:
        print(f"no example apps in {examples}", file=sys.stderr)
        return 1

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_sigterm_unwinds())
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clerkguard-demo-")))
        issuer = stack.enter_context(LocalIssuer())
        servers = [_Server(f, _free_port(), logs / f"{f.module}.log") for f in present]
        print(
            f"clerkguard demo: local issuer {issuer.issuer}; apps configured only through CLERK_* variables"
        )
        try:
            env = _app_env(issuer.env(), examples)
            for server in servers:
                # Registered before starting: a failure halfway still stops the started ones.
                stack.callback(server.stop)
                server.start(examples, env)
                _announce(server)
            failures = _wait_ready(servers, time.monotonic() + timeout)
            if failures:
                print("\nFAILED: not every server came up:")
                for failure in failures:
                    print(f"  - {failure}")
                for server in servers:
                    tail = server.log_tail()
                    if tail:
                        print(f"    {server.label} output:\n{tail}")
                return 1
            print(f"  all servers ready in {time.monotonic() - started:.1f}s\n")
            cases = build_cases(issuer)
            cells = _ask(servers, cases)
            code = _report(cases, [s.label for s in servers], cells)
        except (KeyboardInterrupt, _Interrupted):
            print("\ninterrupted: stopping the servers", file=sys.stderr)
            return 130
    print(f"(finished in {time.monotonic() - started:.1f}s; servers stopped)")
    if missing:
        print(f"note: {', '.join(f.name for f in missing)} skipped (example missing)")
    _next_steps(examples)
    return code
