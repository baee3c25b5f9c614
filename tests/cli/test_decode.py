"""`clerkguard decode`: header and claims, clearly UNVERIFIED, humanised times, garbage-proof."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clerkguard.testing import LocalIssuer, b64url

from .support import assert_clean_failure, run, run_in_process


def _claims_table(stdout: str) -> dict[str, str]:
    lines = stdout.splitlines()
    start = lines.index("claims") + 1
    rows = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        name, value = line.split(None, 1)
        rows[name] = value
    return rows


def test_shows_header_and_claims_labelled_unverified(clerk_issuer: LocalIssuer) -> None:
    token = clerk_issuer.mint(user_id="user_decoded", org_role="admin", expires_in=7200)
    result = run("decode", token)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("UNVERIFIED: decoded WITHOUT checking the signature")
    assert f'kid  "{clerk_issuer.kid}"' in result.stdout
    assert 'cat  "cl_B7d4PD111AAA"' in result.stdout
    claims = _claims_table(result.stdout)
    assert claims["sub"] == '"user_decoded"'
    assert claims["exp"].endswith("(expires in 1h)")  # two hours, minus however slow we are
    assert re.search(r"\(issued \d+s ago\)$", claims["iat"])
    assert re.search(r"\(valid since \d+s ago\)$", claims["nbf"])  # nbf is iat - 10 s
    # ISO 8601, UTC.
    exp = int(claims["exp"].split()[0])
    iso = datetime.fromtimestamp(exp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert claims["exp"].split()[1] == iso
    assert "note:" not in result.stdout  # a well-formed Clerk header


def test_expired_and_not_yet_valid_times_read_naturally(clerk_issuer: LocalIssuer) -> None:
    now = clerk_issuer.clock()
    expired = _claims_table(run("decode", clerk_issuer.mint(issued_at=now - 240)).stdout)
    assert expired["exp"].endswith("(expired 3m ago)")
    future = _claims_table(run("decode", clerk_issuer.mint(issued_at=now + 7200)).stdout)
    assert future["nbf"].endswith("(not valid for 1h)")
    assert future["iat"].endswith("in the FUTURE)")


def test_reads_stdin_and_prints_json(clerk_issuer: LocalIssuer) -> None:
    token = clerk_issuer.mint(user_id="user_json")
    result = run("decode", "-", "--json", stdin=token + "\n")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["verified"] is False
    assert body["header"]["kid"] == clerk_issuer.kid
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert body["claims"] == payload
    assert body["times"]["exp"]["relative"].startswith("expires in")
    assert body["shape_and_header"] == "ok"


def test_notes_what_verify_would_reject(clerk_issuer: LocalIssuer) -> None:
    result = run("decode", clerk_issuer.mint(header={"alg": "HS256"}))
    assert result.returncode == 0
    assert "note: verify would reject this token before any key lookup: token-invalid-algorithm" in (
        result.stdout
    )


def _segment(obj: object) -> str:
    return b64url(json.dumps(obj).encode())


HEADER = _segment({"alg": "RS256", "kid": "ins_1"})
DUPLICATE = b64url(b'{"sub": 1, "sub": 2}')
NAN = b64url(b'{"exp": NaN}')
UTF16 = b64url(bytes([0xFF, 0xFE]) + "{}".encode("utf-16-le"))


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("", "no token given"),
        ("   \n", "no token given"),
        ("just-some-text", "expected three dot-separated segments, found 1"),
        ("a.b", "found 2"),
        ("a.b.c.d.e", "found 5"),
        ("%%%.b.c", "header segment is not base64url"),
        (f"{HEADER}.{b64url(b'[1, 2]')}.sig", "payload is not a strict JSON object"),
        (f"{HEADER}.{DUPLICATE}.sig", "duplicate member name"),
        (f"{HEADER}.{NAN}.sig", "non-finite number"),
        (f"{HEADER}.{UTF16}.sig", "strict JSON"),
        ("h\u00e9ader.payload.sig", "non-ASCII"),
        ("x" * 70_000, "input is longer than 64 KiB"),
    ],
    ids=[
        "empty",
        "blank",
        "text",
        "two-segments",
        "five-segments",
        "bad-base64",
        "array-payload",
        "duplicate-claims",
        "nan",
        "utf16",
        "non-ascii",
        "huge",
    ],
)
def test_garbage_is_a_clean_error_exit_1(stdin: str, message: str) -> None:
    result = run_in_process("decode", "-", stdin=stdin)
    assert_clean_failure(result, 1)
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.stdout == ""


def test_binary_garbage_on_stdin_in_a_real_process() -> None:
    result = run("decode", "-", stdin=bytes(range(256)) * 8)
    assert_clean_failure(result, 1)
    assert result.stderr == "error: not a JWT: it contains non-ASCII or control characters\n"
    assert result.stdout == ""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(min_size=1, max_size=200),
        st.lists(st.text(alphabet='AZaz09-_=+/.{}" ', max_size=40), min_size=1, max_size=5).map(".".join),
        st.lists(
            st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
            min_size=3,
            max_size=3,
        ).map(lambda parts: ".".join(_segment(p) for p in parts)),
    )
)
def test_decode_never_raises_on_anything(text: str) -> None:
    result = run_in_process("decode", "-", stdin=text)
    assert result.returncode in (0, 1)
    if result.returncode == 1:
        assert result.stderr.startswith("error: ")
    else:
        assert result.stdout.startswith("UNVERIFIED")
