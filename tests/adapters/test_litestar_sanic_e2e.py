"""End to end: the Litestar and Sanic examples under real servers, over real HTTP.

Each example runs in its own process (uvicorn for Litestar, Sanic's server
with two worker processes), configured only through ``CLERK_*`` variables
that point at a :class:`~clerkguard.testing.LocalIssuer` on loopback. The
test checks that startup fetches the keys once per worker, that many
requests fetch nothing more, that a key rotation to a new kid costs at most
one refetch per worker, and then runs the shared request table (and its
webhook section) over HTTP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from clerkguard.testing import LocalIssuer

from .conftest import table_env
from .harness import WEBHOOK_SECRETS, Headers, Result, header_list
from .table import CASES, mint_tokens
from .test_table import assert_answer, send
from .test_webhook_table import run_webhook_table

ROOT = Path(__file__).resolve().parents[2]
#: Bound on server startup; far above the ~2-4 s it takes on a busy 2-core box.
STARTUP_TIMEOUT = 45.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class Server:
    """A server subprocess (its own process group) with its output in a temp file."""

    def __init__(self, command: list[str], env: dict[str, str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-6000:]

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"server exited with {self.process.returncode}:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        # The group: Sanic's workers are children of the process we started.
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        self.log.close()


@contextmanager
def serve(command: list[str], issuer: LocalIssuer, port: int) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env.update(table_env(issuer))
    env["CLERK_WEBHOOK_SIGNING_SECRET"] = ", ".join(WEBHOOK_SECRETS)  # a rotation, as one variable
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    server = Server(command, env, port)
    try:
        wait_until(server.answers, STARTUP_TIMEOUT, f"{command[2]} on {server.url}")
        yield server
    except BaseException:
        print(f"--- server output ({' '.join(command)}) ---\n{server.output()}")  # shown on failure
        raise
    finally:
        server.stop()


class HTTPHarness:
    """The shared table's harness over real HTTP; a new connection per request
    (no keep-alive), so Sanic's workers share the requests."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(
            base_url=url, timeout=10.0, limits=httpx.Limits(max_keepalive_connections=0)
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Headers | None = None,
        cookies: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Result:
        # httpx sends repeated names as separate header lines, over a real socket.
        response = self.client.request(method, path, headers=header_list(headers, cookies), content=body)
        return Result(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            json=response.json() if response.content else None,
        )

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.get(path, headers=headers)


def exercise(server: Server, issuer: LocalIssuer, workers: int) -> HTTPHarness:
    """The scenario both frameworks must pass; returns the harness for extra checks."""
    http = HTTPHarness(server.url)
    # Startup: each worker fetched the keys in its startup hook, before serving.
    wait_until(lambda: issuer.request_count >= workers, STARTUP_TIMEOUT, f"{workers} startup fetches")
    assert issuer.request_count == workers

    # Many requests with distinct tokens (real verifications, not cache hits): no fetch.
    for i in range(24):
        response = http.get("/protected", issuer.mint(user_id=f"user_{i}"))
        assert response.status_code == 200, response.text
        assert response.json()["user_id"] == f"user_{i}"
    assert issuer.request_count == workers

    # Key rotation mid-run, to a new kid (the old key stays published).
    old_token = issuer.mint(user_id="user_before_rotation")
    issuer.rotate(new_kid="ins_rotated_e2e", keep_old=True)
    for i in range(16):
        response = http.get("/async", issuer.mint(user_id=f"user_new_{i}"))
        assert response.status_code == 200, response.text
        assert response.json() == {"user_id": f"user_new_{i}", "kind": "async"}
    refetches = issuer.request_count - workers
    assert 1 <= refetches <= workers  # one per worker that saw the new kid
    assert http.get("/protected", old_token).json()["user_id"] == "user_before_rotation"

    # The whole shared table, over HTTP, with tokens of the rotated key.
    with issuer.auth() as auth:  # only for the suffixed cookie name
        tokens = mint_tokens(issuer, auth)
    for case in CASES:
        if case.keys == "up":
            assert_answer(case, send(http, case, tokens, issuer))
    # Unknown kids and forgeries in the table were held to the refetch cooldown.
    assert issuer.request_count <= 2 * workers
    # Clerk webhooks through the real server: raw bodies, the secrets from the environment.
    run_webhook_table(http, workers)
    return http


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    """A private issuer: this test rotates its key and counts its requests."""
    with LocalIssuer() as local:
        yield local


def test_litestar_example_under_uvicorn(issuer: LocalIssuer) -> None:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "examples.litestar_app:app", "--host", "127.0.0.1"]
    with serve([*command, "--port", str(port), "--no-access-log"], issuer, port) as server:
        http = exercise(server, issuer, workers=1)
        member = issuer.mint(user_id="user_m", permissions=["org:reports:read"])
        assert http.get("/me", member).json()["user_id"] == "user_m"
        assert http.get("/reports", member).json() == {"user_id": "user_m", "reports": []}
        assert http.get("/reports/public").json() == {"public": True}
        assert http.get("/me").json() == {
            "error": "unauthorized",
            "reason": "token-missing",
            "detail": "no session token was provided",
        }

        schema: dict[str, Any] = http.get("/schema/openapi.json").json()
    bearer = schema["components"]["securitySchemes"]["ClerkBearer"]
    assert (bearer["type"], bearer["scheme"], bearer["bearerFormat"]) == ("http", "bearer", "JWT")
    security = {path: item.get("get", {}).get("security") for path, item in schema["paths"].items()}
    for path in ("/protected", "/admin", "/async", "/sync", "/me", "/reports"):
        assert security[path] == [{"ClerkBearer": []}], path
    assert security["/optional"] == [{}, {"ClerkBearer": []}]
    assert security["/health"] is None
    assert security["/reports/public"] is None


def test_sanic_example_with_two_workers(issuer: LocalIssuer) -> None:
    port = free_port()
    command = [sys.executable, "-m", "sanic", "examples.sanic_app:app", "--host", "127.0.0.1"]
    with serve([*command, "--port", str(port), "--workers", "2", "--no-motd"], issuer, port) as server:
        http = exercise(server, issuer, workers=2)
        member = issuer.mint(user_id="user_m", permissions=["org:reports:read"])
        assert http.get("/reports", member).json() == {"user_id": "user_m", "reports": []}
        assert http.get("/account/", member).json() == {"user_id": "user_m"}
        assert http.get("/profile").json() == {"public": True}
        put = http.client.put("/profile", headers={"Authorization": f"Bearer {member}"})
        assert put.json() == {"user_id": "user_m", "updated": True}
        unauthenticated = http.client.put("/profile")
        assert unauthenticated.status_code == 401
        assert unauthenticated.json() == {
            "error": "unauthorized",
            "reason": "token-missing",
            "detail": "no session token was provided",
        }
        # Sanic's HTML error pages are for Sanic's errors; the guard's stay JSON.
        html = http.client.get("/reports", headers={"Accept": "text/html"})
        assert html.status_code == 401
        assert html.headers["content-type"].startswith("application/json")
