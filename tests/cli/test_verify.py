"""`clerkguard verify`: configured keys, table or JSON, exit codes 0/1/2/64/78, stdin."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey

from clerkguard.testing import LocalIssuer

from .support import assert_clean_failure, run, run_in_process


def _no_leak(token: str, *outputs: str) -> None:
    # Neither the token nor any of its segments is ever printed back.
    for output in outputs:
        for part in (token, *token.split(".")):
            assert part not in output


def test_valid_token_prints_the_session(clerk_issuer: LocalIssuer) -> None:
    token = clerk_issuer.mint(user_id="user_cli", org_role="admin", permissions=["org:reports:read"])
    result = run("verify", token, env=clerk_issuer.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("VALID session token")
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines()[1:])
    assert rows["user_id"] == "user_cli"
    assert rows["org_role"] == "org:admin"
    assert rows["org_permissions"] == "org:reports:read"
    assert "expires in" in rows["expires_at"]
    _no_leak(token, result.stdout, result.stderr)


def test_token_from_stdin_so_it_stays_out_of_shell_history(clerk_issuer: LocalIssuer) -> None:
    token = clerk_issuer.mint(user_id="user_stdin")
    result = run("verify", "-", stdin=f"Bearer {token}\n", env=clerk_issuer.env())
    assert result.returncode == 0, result.stderr
    assert "user_stdin" in result.stdout


def test_json_output(clerk_issuer: LocalIssuer) -> None:
    token = clerk_issuer.mint(user_id="user_json", org_role="member", plan="pro")
    result = run_in_process("verify", token, "--json", env=clerk_issuer.env())
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["valid"] is True
    assert body["session"]["user_id"] == "user_json"
    assert body["session"]["org_role"] == "org:member"
    assert body["session"]["plans"] == ["o:pro"]
    assert body["claims"]["sub"] == "user_json"
    assert body["claims"]["iss"] == clerk_issuer.issuer


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda i: i.mint(issued_at=i.clock() - 3600), "token-expired"),
        (lambda i: i.mint(key=RSAKey.generate_key(2048, private=True)), "token-invalid-signature"),
        (lambda i: i.mint(iss="https://clerk.other.example"), "token-invalid-issuer"),
        (lambda i: i.mint(header={"alg": "HS256"}), "token-invalid-algorithm"),
        (lambda i: "not-a-token", "token-malformed"),
    ],
    ids=["expired", "forged", "other-issuer", "hs256", "garbage"],
)
def test_invalid_token_exits_1_with_the_reason(clerk_issuer: LocalIssuer, make_token, reason: str) -> None:
    token = make_token(clerk_issuer)
    result = run_in_process("verify", token, env=clerk_issuer.env())
    assert_clean_failure(result, 1)
    assert result.stderr.startswith(f"INVALID: 401 {reason} (")
    assert result.stdout == ""
    _no_leak(token, result.stdout, result.stderr)


def test_invalid_token_as_json(clerk_issuer: LocalIssuer) -> None:
    token = clerk_issuer.mint(issued_at=clerk_issuer.clock() - 3600)
    result = run_in_process("verify", token, "--json", env=clerk_issuer.env())
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "valid": False,
        "status": 401,
        "reason": "token-expired",
        "detail": "the token has expired",
    }


def test_authorized_party_flag_and_env(clerk_issuer: LocalIssuer) -> None:
    token = clerk_issuer.mint(azp="http://localhost:3000")
    flag = run("verify", token, "--authorized-party", "https://app.example", env=clerk_issuer.env())
    assert_clean_failure(flag, 1)
    assert "token-invalid-authorized-party" in flag.stderr
    env = {**clerk_issuer.env(), "CLERK_AUTHORIZED_PARTIES": "https://app.example, http://localhost:3000"}
    assert run_in_process("verify", token, env=env).returncode == 0


def test_keys_unavailable_exits_2(clerk_issuer: LocalIssuer) -> None:
    clerk_issuer.set_fault(status=500)
    result = run("verify", clerk_issuer.mint(), "--timeout", "2", env=clerk_issuer.env())
    assert_clean_failure(result, 2)
    assert "UNAVAILABLE: 503 jwks-unavailable" in result.stderr


def test_pem_key_file_verifies_without_any_request(clerk_issuer: LocalIssuer, tmp_path: Path) -> None:
    pem = tmp_path / "clerk.pem"
    pem.write_text(clerk_issuer.public_pem())
    token = clerk_issuer.mint(user_id="user_pem")
    result = run("verify", token, "--jwt-key-file", str(pem), "--issuer", clerk_issuer.issuer)
    assert result.returncode == 0, result.stderr
    assert "user_pem" in result.stdout
    assert clerk_issuer.request_count == 0


def test_missing_configuration_exits_78_naming_the_variables() -> None:
    result = run("verify", "a.b.c")
    assert_clean_failure(result, 78)
    assert "CLERK_PUBLISHABLE_KEY" in result.stderr
    assert "CLERK_JWKS_URI" in result.stderr


def test_secret_key_is_never_printed(clerk_issuer: LocalIssuer) -> None:
    env = {"CLERK_SECRET_KEY": "secret-without-the-sk-prefix"}
    result = run("verify", clerk_issuer.mint(), "--jwks-uri", clerk_issuer.jwks_uri, env=env)
    assert_clean_failure(result, 78)
    assert "CLERK_SECRET_KEY" in result.stderr
    assert "without-the-sk-prefix" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [["verify"], ["verify", "a.b.c", "--clock-skew", "soon"], ["no-such-command"], []],
    ids=["no-token", "bad-number", "unknown-command", "nothing"],
)
def test_usage_errors_exit_64(args: list[str]) -> None:
    result = run_in_process(*args)
    assert_clean_failure(result, 64)
    assert "usage: clerkguard" in result.stderr


def test_empty_stdin_is_an_invalid_token() -> None:
    result = run_in_process("verify", "-", stdin="")
    assert_clean_failure(result, 1)
    assert "no token given on standard input" in result.stderr


def test_help_and_version() -> None:
    helped = run("--help")
    assert helped.returncode == 0
    for command in ("verify", "decode", "jwks", "dev-issuer", "mint", "demo"):
        assert command in helped.stdout
    assert re.search(r"^  64 +usage error", helped.stdout, re.MULTILINE)
    version = run_in_process("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("clerkguard ")


def test_the_console_script_is_installed() -> None:
    [entry] = [e for e in entry_points(group="console_scripts") if e.name == "clerkguard"]
    assert entry.value == "clerkguard.__main__:main"
    script = Path(sys.executable).with_name("clerkguard")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("clerkguard ")
