"""``benchmarks/guard_parts.py`` serves its parts under uvicorn and prints every row.

A smoke test only: the numbers depend on the machine and are never asserted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "guard_parts.py"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (make bench-load installs it)")
def test_guard_parts_prints_a_row_per_part() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    lines = result.stdout.splitlines()
    for part in ("open", "scan", "token", "lookup", "cached", "guard"):
        row = next((line.split() for line in lines if line.split()[:1] == [part]), None)
        assert row is not None, f"no row {part!r} in:\n{result.stdout}"
        server_us, in_process_us = float(row[1]), float(row[3])
        assert server_us > 0
        assert in_process_us > 0
    assert any(line.startswith("one more route in front") for line in lines)
