"""Process models: a forked child after warm-up, and a real ``gunicorn --preload -w 2``.

A child inherits the parent's keys (no fetch on start), but none of its
threads, locks or in-flight fetches: it must verify, and refresh, on its own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from clerkguard import AuthError, ClerkAuth
from clerkguard.testing import LocalIssuer

from .support import jwks_threads

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()"),
    # Python 3.12+ warns that fork() in a threaded process may deadlock: exactly what is tested.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]


def summary(auth: ClerkAuth, token: str) -> str:
    try:
        return auth.verify(token).user_id
    except AuthError as exc:
        return f"{exc.status} {exc.reason}"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def run_in_child(work: Callable[[], dict[str, Any]], timeout: float = 20.0) -> dict[str, Any]:
    """Fork; run ``work`` in the child and return its JSON report (the child is always reaped)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running any of pytest's cleanup
        code = 1
        try:
            os.close(read_fd)
            os.write(write_fd, json.dumps(work()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        deadline = time.monotonic() + timeout
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "the forked child hung"
            time.sleep(0.02)
        pid = 0
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        assert data, "the child failed before reporting"
        report: dict[str, Any] = json.loads(data)
        return report
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_a_forked_child_uses_inherited_keys_and_fetches_on_its_own(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(http_timeout=5)  # default 30 s cooldown: the parent's refetch spends it
    assert auth.keyring.refresh_sync()
    assert summary(auth, issuer.mint()) == "user_2abcdefghijklmnopqrstuvwxyz"  # starts the refresher
    kept = issuer.mint(user_id="user_kept")
    issuer.rotate(new_kid="ins_rotated")  # the old key stays published
    rotated = issuer.mint(user_id="user_rotated")
    # Fork while the parent's own refetch is in flight: the child must not wait for it.
    issuer.set_fault(delay=1.0)
    parent: list[str] = []
    waiter = threading.Thread(target=lambda: parent.append(summary(auth, rotated)), daemon=True)
    waiter.start()
    wait_until(lambda: issuer.request_count == 2)

    def child() -> dict[str, Any]:
        report: dict[str, Any] = {"kept": summary(auth, kept), "fetches_before": auth.stats.fetches}
        report["rotated"] = summary(auth, rotated)
        report["fetches_after"] = auth.stats.fetches
        wait_until(lambda: len(jwks_threads(auth)) == 1)  # the child's fetch thread has ended
        report["threads"] = [name.rsplit("-", 1)[1] for name in jwks_threads(auth)]
        return report

    report = run_in_child(child)
    waiter.join(10)
    assert report == {
        "kept": "user_kept",  # inherited keys: no fetch needed
        "fetches_before": 2,
        "rotated": "user_rotated",  # the child's own fetch, not the parent's
        "fetches_after": 3,
        "threads": ["refresher"],  # the child's own refresher thread
    }
    assert parent == ["user_rotated"]
    assert issuer.request_count == 3


def test_a_keyring_copied_without_fork_hooks_resets_itself_by_pid(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(http_timeout=5)
    issuer.set_fault(delay=1.0)
    threading.Thread(target=summary, args=(auth, issuer.mint()), daemon=True).start()
    wait_until(lambda: issuer.request_count == 1)
    issuer.set_fault()
    # What a child sees when no at-fork hook ran: another pid, a flight whose thread is gone.
    auth.keyring._pid = -1
    assert summary(auth, issuer.mint(user_id="user_after")) == "user_after"
    assert issuer.request_count == 2  # fetched itself instead of waiting for the "parent's" flight


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_gunicorn_preload_workers_verify_and_refresh_on_their_own(
    issuer: LocalIssuer, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env.update(CLERK_JWKS_URI=issuer.jwks_uri, CLERK_ISSUER=issuer.issuer)
    log = (tmp_path / "gunicorn.log").open("wb")
    command = [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", f"127.0.0.1:{port}"]
    command += ["--chdir", str(Path(__file__).parent), "--graceful-timeout", "5", "wsgi_app:app"]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/?hold=0.05"

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_until(up, timeout=30)
        assert issuer.request_count == 1  # the master's warm-up, before the fork

        def answers_from_both_workers(token: str) -> dict[int, dict[str, Any]]:
            """Concurrent requests until both workers have answered; the last answer of each."""
            seen: dict[int, dict[str, Any]] = {}

            def ask(_: int) -> dict[str, Any]:
                response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
                answer: dict[str, Any] = response.json()
                answer["status"] = response.status_code
                return answer

            with ThreadPoolExecutor(4) as pool:
                for _ in range(50):
                    for answer in pool.map(ask, range(4)):
                        seen[answer.pop("pid")] = answer
                    if len(seen) == 2:
                        return seen
            raise AssertionError(f"only {len(seen)} worker(s) answered")

        before = answers_from_both_workers(issuer.mint(user_id="user_before"))
        assert list(before.values()) == [{"user": "user_before", "fetches": 1, "status": 200}] * 2
        assert issuer.request_count == 1  # workers started warm

        issuer.rotate(new_kid="ins_rotated")  # each worker must now refetch by itself
        after = answers_from_both_workers(issuer.mint(user_id="user_after"))
        assert list(after.values()) == [{"user": "user_after", "fetches": 2, "status": 200}] * 2
        assert issuer.request_count == 3  # one refetch per worker
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
