"""`clerkguard jwks`: every published key with kid, size, status and why it is unusable."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from clerkguard.testing import LocalIssuer, b64url

from .support import assert_clean_failure, run, run_in_process


def _jwks(issuer: LocalIssuer, *args: str, env: dict[str, str] | None = None) -> Any:
    result = run_in_process("jwks", "--json", *args, env=issuer.env() if env is None else env)
    return result, json.loads(result.stdout)


def _fake_rsa(kid: str, bits: int, **extra: Any) -> dict[str, Any]:
    # Only the modulus size matters to the validator, which rejects it before any import.
    n = (1 << (bits - 1)) | 1
    return {"kty": "RSA", "kid": kid, "n": b64url(n.to_bytes(bits // 8, "big")), "e": "AQAB", **extra}


def test_lists_the_issuers_key(clerk_issuer: LocalIssuer) -> None:
    result = run("jwks", env=clerk_issuer.env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"JWKS {clerk_issuer.jwks_uri}: 1 key, 1 usable"
    assert lines[1].split() == ["KID", "TYPE", "BITS", "STATUS", "WHY"]
    assert lines[2].split() == [clerk_issuer.kid, "RSA", "2048", "usable"]


def test_explains_every_unusable_key(clerk_issuer: LocalIssuer) -> None:
    good = clerk_issuer.jwks()["keys"][0]
    other = LocalIssuer().jwks()["keys"][0]
    clerk_issuer.jwks_override = {
        "keys": [
            good,
            _fake_rsa("weak", 1024),
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {**good, "kid": "enc", "use": "enc"},
            {**good, "kid": "hs", "alg": "HS256"},
            {**good, "kid": "dup"},
            {**other, "kid": "dup"},
            "not an object",
        ]
    }
    result, body = _jwks(clerk_issuer)
    assert result.returncode == 0  # one usable key is enough
    rows = {(r["kid"], r["status"], r["reason"]) for r in body["keys"]}
    assert rows == {
        (clerk_issuer.kid, "usable", None),
        ("weak", "unusable", "modulus of 1024 bits outside 2048..8192"),
        ("ec", "unusable", "not an RSA key"),
        ("enc", "unusable", "use is not 'sig'"),
        ("hs", "unusable", "alg is not RS256"),
        ("dup", "unusable", "two different keys share this kid"),
        (None, "unusable", "not a JSON object"),
    }
    assert [r["bits"] for r in body["keys"]] == [2048, 1024, None, 2048, 2048, 2048, 2048, None]
    assert len(body["keys"]) == 8
    assert body["error"] is None


def test_a_set_without_usable_keys_exits_1_and_says_why(clerk_issuer: LocalIssuer) -> None:
    clerk_issuer.jwks_override = {"keys": [_fake_rsa("weak", 1024), _fake_rsa("huge", 8200)]}
    result = run_in_process("jwks", env=clerk_issuer.env())
    assert_clean_failure(result, 1)
    assert "2 keys, 0 usable" in result.stdout
    assert "modulus of 1024 bits outside 2048..8192" in result.stdout
    assert "modulus of 8200 bits outside 2048..8192" in result.stdout
    assert "problem: no usable key in the set" in result.stdout


def test_a_body_that_is_not_a_jwks_exits_1(clerk_issuer: LocalIssuer) -> None:
    clerk_issuer.set_fault(body=b"<html>maintenance</html>")
    result, body = _jwks(clerk_issuer)
    assert result.returncode == 1
    assert body["keys"] == []
    assert body["error"].startswith("invalid JSON")


def test_http_failures_exit_2(clerk_issuer: LocalIssuer) -> None:
    clerk_issuer.set_fault(status=500)
    failed = run("jwks", env=clerk_issuer.env())
    assert_clean_failure(failed, 2)
    assert failed.stderr == f"UNAVAILABLE: {clerk_issuer.jwks_uri}: HTTP 500\n"
    clerk_issuer.set_fault(redirect="https://attacker.example/jwks.json")
    redirected = run_in_process("jwks", env=clerk_issuer.env())
    assert_clean_failure(redirected, 2)
    assert "HTTP 302 redirect (not followed)" in redirected.stderr
    assert "attacker" not in redirected.stderr + redirected.stdout


def test_connection_refused_exits_2() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    result = run("jwks", "--jwks-uri", url, "--issuer", "https://clerk.example", "--timeout", "2")
    assert_clean_failure(result, 2)
    assert result.stderr.endswith(": connection failed\n")


def test_backend_api_jwks_sends_the_secret_but_never_prints_it(clerk_issuer: LocalIssuer) -> None:
    env = {
        "CLERK_SECRET_KEY": clerk_issuer.secret_key,
        "CLERK_API_URL": clerk_issuer.api_url,
        "CLERK_ISSUER": clerk_issuer.issuer,
    }
    result = run("jwks", env=env)
    assert result.returncode == 0, result.stderr
    assert f"JWKS {clerk_issuer.api_url}/v1/jwks: 1 key, 1 usable" in result.stdout
    assert clerk_issuer.secret_key not in result.stdout + result.stderr
    wrong = run_in_process("jwks", env={**env, "CLERK_SECRET_KEY": "sk_test_wrong_secret_value"})
    assert_clean_failure(wrong, 2)
    assert "HTTP 401" in wrong.stderr
    assert "wrong_secret_value" not in wrong.stderr


def test_a_pem_key_needs_no_jwks(clerk_issuer: LocalIssuer, tmp_path: Path) -> None:
    pem = tmp_path / "clerk.pem"
    pem.write_text(clerk_issuer.public_pem())
    result = run_in_process("jwks", "--jwt-key-file", str(pem), "--issuer", clerk_issuer.issuer)
    assert result.returncode == 0
    assert result.stdout == "no JWKS: keys come from the configured PEM public key (jwt_key, 2048 bits)\n"
    assert clerk_issuer.request_count == 0


def _secret_url(base: str) -> str:
    # Userinfo and a query key, as some proxies and gateways want them.
    scheme, rest = base.split("://", 1)
    return f"{scheme}://svc:pw-CANARY-1@{rest}?api_key=CANARY-2&x=1"


def test_the_url_is_shown_without_userinfo_or_query(clerk_issuer: LocalIssuer) -> None:
    env = {**clerk_issuer.env(), "CLERK_JWKS_URI": _secret_url(clerk_issuer.jwks_uri)}
    text = run_in_process("jwks", env=env)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == f"JWKS {clerk_issuer.jwks_uri}: 1 key, 1 usable"
    result, body = _jwks(clerk_issuer, env=env)
    assert result.returncode == 0
    assert body["jwks_uri"] == clerk_issuer.jwks_uri
    for output in (text.stdout + text.stderr, result.stdout + result.stderr):
        assert "CANARY" not in output
        assert "api_key" not in output


def test_a_failed_fetch_shows_the_url_without_userinfo_or_query(clerk_issuer: LocalIssuer) -> None:
    clerk_issuer.set_fault(status=500)
    env = {**clerk_issuer.env(), "CLERK_JWKS_URI": _secret_url(clerk_issuer.jwks_uri)}
    text = run_in_process("jwks", env=env)
    assert text.returncode == 2
    assert f"UNAVAILABLE: {clerk_issuer.jwks_uri}: HTTP 500" in text.stderr
    result, body = _jwks(clerk_issuer, env=env)
    assert result.returncode == 2
    assert (body["jwks_uri"], body["error"]) == (clerk_issuer.jwks_uri, "HTTP 500")
    for output in (text.stdout + text.stderr, result.stdout + result.stderr):
        assert "CANARY" not in output
