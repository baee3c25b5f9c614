"""Helpers for the command-line tests: the CLI always runs as a real subprocess.

``run(*args, stdin=..., env=...)`` runs ``python -m clerkguard ...`` with a
clean environment (every inherited ``CLERK_*`` variable removed, then ``env``
added), so a developer's real Clerk settings never leak into a test.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from clerkguard.cli import main

REPO = Path(__file__).resolve().parents[2]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment without CLERK_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env.update(extra or {})
    return env


def cli_command(*args: str) -> list[str]:
    """The command line that runs the CLI with this interpreter."""
    return [sys.executable, "-m", "clerkguard", *args]


def run(
    *args: str,
    stdin: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m clerkguard *args``; output decoded leniently (garbage stays assertable)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run(
        cli_command(*args),
        input=data,
        capture_output=True,
        env=clean_env(env),
        timeout=timeout,
        cwd=REPO,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int) -> None:
    """An expected failure: this exit code, a message, and never a traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip() or result.stdout.strip()


def run_in_process(
    *args: str, stdin: str | bytes = b"", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The same ``main()`` the console script calls, in this process (fast, for bulk cases).

    ``os.environ`` is cleaned of ``CLERK_*`` and given ``env`` for the call,
    then restored; argparse's ``SystemExit`` becomes the return code.
    """
    data = stdin.encode() if isinstance(stdin, str) else stdin
    out, err = io.StringIO(), io.StringIO()
    saved_stdin, saved_env = sys.stdin, dict(os.environ)
    call_env = clean_env(env)
    sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    os.environ.clear()
    os.environ.update(call_env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.stdin = saved_stdin
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
