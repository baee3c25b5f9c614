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
