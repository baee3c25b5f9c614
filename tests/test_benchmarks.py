"""The verification benchmark runs end to end and prints its table.

A smoke test only: timings depend on the machine and are never asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
BENCHMARK = BENCHMARKS / "verify.py"
ROWS = (
    "floor: split+b64+json+RSA",
    "clerkguard verify, cold",
    "clerkguard verify, repeated",
    "clerkguard averify, cold",
    "clerkguard averify, repeated",
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--tokens", "150", "--rounds", "2", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_benchmark_smoke_run_prints_every_row_and_exits_zero() -> None:
    result = _run("--no-peers")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in ROWS:
        row = next((line for line in lines if line.startswith(name)), None)
        assert row is not None, f"missing row {name!r} in:\n{result.stdout}"
        median, p90, ratio = (float(cell) for cell in row[len(name) :].split()[:3])
        assert 0 < median <= p90
        assert ratio > 0
    assert "PyJWT" not in result.stdout  # --no-peers really skips the peers
    assert any(line.startswith("targets:") for line in lines)


@pytest.mark.parametrize("bad", ["--tokens=0", "--rounds=-1"])
def test_benchmark_rejects_nonsense_sizes(bad: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--no-peers", bad],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "must be at least 1" in result.stderr


def test_guard_benchmark_smoke_run_measures_every_framework() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "guard.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for framework in (
        "flask",
        "litestar",
        "starlette",
        "fastapi",
        "fastapi-Depends",
        "vs-noop-Depends",
        "django",
        "django-async",
    ):
        row = next((line for line in result.stdout.splitlines() if line.split()[:1] == [framework]), None)
        assert row is not None, f"missing row {framework!r} in:\n{result.stdout}"
        open_us, guarded_us = (float(cell) for cell in row.split()[1:3])
        assert open_us > 0
        assert guarded_us > 0
        assert row.split()[-1] in ("PASS", "MISS")


def _section(lines: list[str], title: str) -> list[str]:
    """The lines of the table whose title line starts with ``title``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def _row(lines: list[str], *first_cells: str) -> list[str]:
    row = next(
        (line.split() for line in lines if line.split()[: len(first_cells)] == list(first_cells)), None
    )
    assert row is not None, f"no row {first_cells} in:\n" + "\n".join(lines)
    return row


def test_load_benchmark_smoke_run_serves_both_routes_under_real_servers() -> None:
    # The Python loop instead of wrk (CI needs no wrk): one sync and one async
    # server, every case, tiny runs. Checks the pieces and the tables, not speed.
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "load.py"),
            *("--loader", "python", "--frameworks", "flask,litestar"),
            *("--duration", "0.2", "--rounds", "1", "--tokens", "5", "--cold-concurrency", "4"),
            *("--fetch-delay", "0.1", "--triggers", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Every round runs all four paths, each kind at mirrored router positions (1 + 4 = 2 + 3).
    assert "(/open, /guarded, /guarded-2, /open-2)" in lines[0], lines[0]
    throughput = _section(lines, "throughput:")
    cold = _section(lines, "cold start:")
    lag = _section(lines, "event-loop lag:")
    for framework in ("flask", "litestar"):
        for case in ("repeated", "rotating"):
            row = _row(throughput, framework, case)
            assert row[-1] in ("PASS", "MISS"), row  # not INVALID: every request answered 200
            open_rps, guarded_rps = float(row[2]), float(row[3])
            assert open_rps > 0
            assert guarded_rps > 0
        # One JWKS fetch for the whole server, however many first requests; all 4 answered 200.
        row = _row(cold, framework)
        assert row[2] == "1", row
        assert row[-1] == "200x4", row
    row = _row(lag, "litestar")
    assert row[-4:-1] == ["1", "200", "<=1"], row  # the new kid made exactly one refetch, answered 200
    assert not any(line.startswith("flask") for line in lag)  # a sync server has no event loop


def test_load_benchmark_serves_every_added_framework_under_its_real_server() -> None:
    # Starlette and FastAPI on uvicorn, Django on gunicorn and on uvicorn, Litestar with
    # handlers that take `request`: on each app both open paths answer 200 with and without
    # a token and both guarded paths 200 and 401 (load.py checks it before timing), every
    # request of the runs answers 200, one JWKS fetch per server.
    frameworks = ("starlette", "fastapi", "django", "django-asgi", "litestar-request")
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "load.py"),
            *("--loader", "python", "--frameworks", ",".join(frameworks), "--cases", "repeated,cold"),
            *("--duration", "0.2", "--rounds", "1", "--tokens", "3", "--cold-concurrency", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    throughput = _section(lines, "throughput:")
    cold = _section(lines, "cold start:")
    for framework in frameworks:
        row = _row(throughput, framework, "repeated")
        assert row[-1] in ("PASS", "MISS"), row  # not INVALID, not ERROR
        row = _row(cold, framework)
        assert row[2] == "1", row
        assert row[-1] == "200x2", row
