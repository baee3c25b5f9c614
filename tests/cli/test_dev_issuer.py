"""`clerkguard dev-issuer` serves on loopback until SIGTERM; `clerkguard mint` signs for it."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from clerkguard import AuthError, ClerkAuth
from clerkguard.cli import dev_kid, load_key_file
from clerkguard.testing import LocalIssuer

from .support import REPO, assert_clean_failure, clean_env, cli_command, run, run_in_process


@dataclass
class DevIssuer:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    stderr_lines: list[str]

    @property
    def port(self) -> int:
        return int(self.env["CLERK_JWKS_URI"].split(":")[2].split("/")[0])

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _read_until(
    proc: subprocess.Popen[bytes], done: Callable[[list[str], list[str]], bool], timeout: float
) -> tuple[list[str], list[str]]:
    """Read stdout and stderr lines until ``done(out, err)`` holds (bounded wait).

    Raw ``os.read`` on readiness: a buffered reader could swallow lines that
    ``select`` would then never report.
    """
    assert proc.stdout is not None
    assert proc.stderr is not None
    streams = {proc.stdout.fileno(): b"", proc.stderr.fileno(): b""}
    out_fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        while True:
            out = streams[out_fd].decode().splitlines()
            err = streams[proc.stderr.fileno()].decode().splitlines()
            if done(out, err):
                return out, err
            remaining = deadline - time.monotonic()
            events = selector.select(max(remaining, 0))
            if not events:
                raise AssertionError(f"dev issuer said too little within {timeout}s: {out} {err}")
            for key, _ in events:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    raise AssertionError(f"dev issuer exited early: {out} {err}")
                streams[key.fd] += chunk


@contextmanager
def dev_issuer(*args: str) -> Iterator[DevIssuer]:
    proc = subprocess.Popen(
        cli_command("dev-issuer", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        cwd=REPO,
    )
    try:
        out, err = _read_until(proc, lambda o, e: len(o) >= 5 and any("mint a token" in x for x in e), 30)
        env = dict(line.split("=", 1) for line in out)
        yield DevIssuer(proc, env, err)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def _stop(server: DevIssuer) -> int:
    server.proc.send_signal(signal.SIGTERM)
    return server.proc.wait(timeout=10)


def _port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_serves_until_sigterm_mints_tokens_and_keeps_its_key_across_restarts(tmp_path: Path) -> None:
    key_file = tmp_path / "issuer.pem"
    with dev_issuer("--port", "0", "--key-file", str(key_file)) as server:
        assert set(server.env) == {
            "CLERK_PUBLISHABLE_KEY",
            "CLERK_JWKS_URI",
            "CLERK_AUTHORIZED_PARTIES",
            "CLERK_API_URL",
            "CLERK_SECRET_KEY",
        }
        assert server.env["CLERK_JWKS_URI"].startswith("http://127.0.0.1:")
        assert server.env["CLERK_API_URL"] == server.issuer
        assert server.env["CLERK_SECRET_KEY"].startswith("sk_test_")
        assert os.stat(key_file).st_mode & 0o777 == 0o600
        minted = run(
            "mint",
            "--key-file",
            str(key_file),
            "--user",
            "user_minted",
            "--role",
            "admin",
            "--permission",
            "org:reports:read",
            env={"CLERK_PUBLISHABLE_KEY": server.env["CLERK_PUBLISHABLE_KEY"]},
        )
        assert minted.returncode == 0, minted.stderr
        token = minted.stdout.strip()
        assert minted.stdout == token + "\n"  # only the token: TOKEN=$(clerkguard mint ...)
        with ClerkAuth(env=server.env) as auth:  # exactly what an app configured from those lines does
            session = auth.verify(token)
        assert session.user_id == "user_minted"
        assert session.has(role="admin")
        assert session.has(permission="org:reports:read")
        # Machine tokens of every kind, minted in other processes, verified by a third.
        machine = {
            "m2m_token": ("--kind", "m2m", "--subject", "mch_minted", "--scopes", "mch_other"),
            "oauth_token": ("--kind", "oauth", "--opaque", "--subject", "user_minted"),
            "api_key": ("--kind", "api_key", "--subject", "org_minted", "--name", "ci"),
        }
        tokens = {}
        for kind, args in machine.items():
            made = run("mint", "--key-file", str(key_file), *args, env={"CLERK_ISSUER": server.issuer})
            assert made.returncode == 0, made.stderr
            tokens[kind] = made.stdout.strip()
            checked = run("verify", "-", "--accepts-token", kind, stdin=tokens[kind], env=server.env)
            assert checked.returncode == 0, checked.stderr
            assert checked.stdout.startswith("VALID ")
            assert server.env["CLERK_SECRET_KEY"] not in checked.stdout + checked.stderr
        assert _stop(server) == 0
        assert _port_is_closed(server.port)
    # Same key file and port: the restarted issuer publishes the same key, so the token still verifies.
    with dev_issuer("--port", str(server.port), "--key-file", str(key_file)) as again:
        assert again.env == server.env
        with ClerkAuth(env=again.env) as auth:
            assert auth.verify(token).user_id == "user_minted"
            # Opaque tokens carry their record: the restarted issuer's Backend API fake knows them.
            key = auth.verify(tokens["api_key"], accepts_token="api_key")
            assert (key.subject, key.name) == ("org_minted", "ci")
            assert auth.verify(tokens["oauth_token"], accepts_token="oauth_token").subject == "user_minted"
        assert _stop(again) == 0


def test_without_a_key_file_a_temporary_one_is_removed_on_exit() -> None:
    with dev_issuer() as server:
        line = next(x for x in server.stderr_lines if x.startswith("private key: "))
        assert line.endswith(" (temporary, removed on exit)")
        key_file = Path(line.removeprefix("private key: ").split(" (")[0])
        minted = run_in_process("mint", "--key-file", str(key_file), "--issuer", server.issuer)
        with ClerkAuth(env=server.env) as auth:
            assert auth.verify(minted.stdout.strip()).user_id == "user_dev"
        assert _stop(server) == 0
    assert not key_file.exists()
    assert not key_file.parent.exists()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "issuer.pem"
    path.write_bytes(LocalIssuer().key.as_pem(private=True))
    path.chmod(0o600)
    return path


def test_mint_expired_and_v1_tokens(key_file: Path) -> None:
    issuer = LocalIssuer(kid=dev_kid(load_key_file(key_file)))
    issuer.key = load_key_file(key_file)
    with issuer, issuer.auth() as auth:
        args = ("mint", "--key-file", str(key_file), "--issuer", issuer.issuer)
        expired = run_in_process(*args, "--expires-in", "-120").stdout.strip()
        with pytest.raises(AuthError) as info:
            auth.verify(expired)
        assert info.value.reason == "token-expired"
        v1 = run_in_process(
            *args, "--v1", "--org", "org_1", "--role", "billing", "--permission", "org:inv:read"
        )
        session = auth.verify(v1.stdout.strip())
    assert session.version == 1
    assert session.org_id == "org_1"
    assert session.org_role == "org:billing"
    assert session.org_permissions == ("org:inv:read",)


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        ("missing", (), 78, "no key file at"),
        ("world-readable", (), 78, "readable by others"),
        ("public-pem", (), 78, "is not a PEM RSA private key"),
        ("ok", ("--permission", "reports"), 64, "org:<feature>:<permission>"),
    ],
)
def test_mint_refuses_bad_input(
    key_file: Path, setup: str, args: tuple[str, ...], code: int, message: str
) -> None:
    if setup == "missing":
        key_file.unlink()
    elif setup == "world-readable":
        key_file.chmod(0o644)
    elif setup == "public-pem":
        key_file.write_text(LocalIssuer().public_pem())
    result = run_in_process("mint", "--key-file", str(key_file), "--issuer", "http://127.0.0.1:1", *args)
    assert_clean_failure(result, code)
    assert message in result.stderr
    assert "PRIVATE KEY" not in result.stderr
    assert result.stdout == ""


def test_mint_needs_an_issuer(key_file: Path) -> None:
    result = run_in_process("mint", "--key-file", str(key_file))
    assert_clean_failure(result, 64)
    assert "--issuer" in result.stderr
