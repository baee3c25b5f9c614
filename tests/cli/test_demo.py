"""`clerkguard demo`: the in-process table, and the runner behind `make demo`.

The runner is tested with a stand-in example (`fake_examples/flask_app.py`, a
bare WSGI app on the public adapter API under a real gunicorn), so its
process handling is pinned whatever state the real examples are in. The last
test runs the real `make demo` command when every example exists.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from clerkguard import _demo
from clerkguard._demo import FRAMEWORKS

from .support import REPO, assert_clean_failure, clean_env, cli_command, run

FAKE = Path(__file__).parent / "fake_examples" / "flask_app.py"
SERVER_LINE = re.compile(r"^  (?P<label>.+?) +pid (?P<pid>\d+) +http://127\.0\.0\.1:(?P<port>\d+)$", re.M)


@pytest.fixture
def fake_examples(tmp_path: Path) -> Path:
    examples = tmp_path / "examples"
    examples.mkdir()
    shutil.copy(FAKE, examples / "flask_app.py")
    return examples


def _servers(stdout: str) -> list[tuple[str, int, int]]:
    return [(m["label"], int(m["pid"]), int(m["port"])) for m in SERVER_LINE.finditer(stdout)]


def _gone(pid: int) -> bool:
    """No process is left in the server's own process group (master and workers).

    (Not "the port is closed": on a shared machine another test may already
    have been given that port again.)
    """
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _table_rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("request "))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        name, *cells = re.split(r"\s{2,}", line)
        rows[name] = cells
    return rows


def test_in_process_demo_needs_no_files() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    rows = _table_rows(result.stdout)
    assert len(rows) == 12
    assert rows["no token"] == ["401 token-missing", "401 token-missing"]
    assert rows["forged signature"] == ["401 token-invalid-signature", "401 token-invalid-signature"]
    assert rows["with permission"] == ["200 ok", "200 ok"]
    assert "OK: every answer agrees with the expected result on all 12 requests." in result.stdout
    assert_ends_with_next_steps(result.stdout)


def assert_ends_with_next_steps(stdout: str) -> None:
    # The demo ends by pointing somewhere: the examples, the docs, a dev issuer for your own app.
    tail = stdout[stdout.rindex("\nNext:") :]
    assert "examples" in tail
    assert "docs/index.md" in tail
    assert "clerkguard dev-issuer --key-file dev-issuer.pem" in tail
    assert "clerkguard mint --key-file dev-issuer.pem" in tail
    assert stdout.rstrip().endswith(tail.rstrip())


def test_every_example_is_required(tmp_path: Path) -> None:
    result = run("demo", "--examples", str(tmp_path))
    assert_clean_failure(result, 1)
    for framework in FRAMEWORKS:
        assert f"missing: {tmp_path / framework.path} ({framework.name})" in result.stderr
    assert "needs every example app" in result.stderr


def test_runs_an_example_under_a_real_server_and_stops_it(fake_examples: Path) -> None:
    result = run("demo", "--examples", str(fake_examples), "--allow-missing", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipping Quart: " in result.stdout
    [(label, pid, _)] = _servers(result.stdout)
    assert label == "Flask (gunicorn)"
    rows = _table_rows(result.stdout)
    assert rows["wrong azp"] == ["401 token-invalid-authorized-party", "401 token-invalid-authorized-party"]
    assert rows["session cookie"] == ["200 ok", "200 ok"]
    assert "OK: every answer agrees with the expected result on all 12 requests." in result.stdout
    assert _gone(pid)
    assert_ends_with_next_steps(result.stdout)
    assert "flask_app.py" in result.stdout.split("\nNext:")[-1]


def test_a_wrong_answer_fails_the_demo(fake_examples: Path) -> None:
    result = run("demo", "--examples", str(fake_examples), "--allow-missing", env={"FAKE_BROKEN": "1"})
    assert result.returncode == 1
    rows = _table_rows(result.stdout)
    assert rows["no token"] == ["401 token-missing", "200 ok *"]
    assert rows["good token"] == ["200 ok", "200 ok"]
    assert "FAILED: 8 request(s) answered differently than expected (marked *):" in result.stdout
    assert "  - expired: expected '401 token-expired'; Flask (gunicorn) answered '200 ok'" in result.stdout
    [(_, pid, _)] = _servers(result.stdout)
    assert _gone(pid)


def test_a_server_that_cannot_start_is_reported_with_its_output(fake_examples: Path) -> None:
    result = run("demo", "--examples", str(fake_examples), "--allow-missing", env={"FAKE_CRASH": "1"})
    assert result.returncode == 1
    assert "FAILED: not every server came up:" in result.stdout
    assert re.search(r"Flask \(gunicorn\) exited with status \d+", result.stdout)
    assert "RuntimeError: fake example failed to import" in result.stdout  # the server's log tail


def test_a_port_taken_in_the_meantime_is_retried_once(
    fake_examples: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        # The first port handed to the server is one somebody else holds.
        ports = iter([taken_port])
        free_port = _demo._free_port
        monkeypatch.setattr(_demo, "_free_port", lambda: next(ports, None) or free_port())
        code = _demo.run_examples(fake_examples, allow_missing=True)
    out = capsys.readouterr().out
    assert code == 0, out
    first, second = _servers(out)
    assert first[0] == second[0] == "Flask (gunicorn)"
    assert first[2] == taken_port
    assert second[2] != taken_port
    assert _gone(first[1])
    assert _gone(second[1])
    assert "OK: every answer agrees with the expected result on all 12 requests." in out


def test_sigterm_while_starting_stops_every_server(fake_examples: Path) -> None:
    demo = subprocess.Popen(
        [*cli_command("demo", "--examples", str(fake_examples), "--allow-missing")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env({"FAKE_SLOW_START": "1"}),
        cwd=REPO,
    )
    try:
        assert demo.stdout is not None
        seen = b""
        deadline = time.monotonic() + 30
        while not SERVER_LINE.search(seen.decode()) and time.monotonic() < deadline:
            seen += demo.stdout.readline()
        [(_, pid, _)] = _servers(seen.decode())
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=20) == 130
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert _gone(pid)


EXAMPLES = REPO / "examples"


@pytest.mark.demo
@pytest.mark.skipif(
    not all((EXAMPLES / f.path).is_file() for f in FRAMEWORKS),
    reason="make demo needs every example app",
)
def test_make_demo_all_frameworks_agree() -> None:
    # What `make demo` runs (see the Makefile), from the repository root; the
    # timeout is the "under a minute".
    result = run("demo", "--examples", "examples", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [label for label, _, _ in _servers(result.stdout)] == [
        "Flask (gunicorn)",
        "Quart (hypercorn)",
        "Litestar (uvicorn)",
        "Sanic (sanic)",
        "Starlette (uvicorn)",
        "FastAPI (uvicorn)",
        "Django (gunicorn)",
        "Django (uvicorn)",
    ]
    assert "OK: all 8 frameworks agree with the expected result on all 12 requests." in result.stdout
    assert all(_gone(pid) for _, pid, _ in _servers(result.stdout))
