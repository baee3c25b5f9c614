"""The CLI and every kind of Clerk credential: `verify --accepts-token`, `decode`, `mint --kind`.

Against a real loopback issuer and its Backend API fake (`LocalIssuer`),
holding the key of a dev issuer key file, so tokens minted by the CLI in
another process verify here exactly as they would against `dev-issuer`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clerkguard.cli import dev_kid, dev_secret_key, load_key_file
from clerkguard.testing import Fault, LocalIssuer

from .support import assert_clean_failure, run, run_in_process

KINDS = ("session_token", "m2m_token", "oauth_token", "api_key")
LABELS = {
    "session_token": "session token",
    "m2m_token": "M2M token",
    "oauth_token": "OAuth access token",
    "api_key": "API key",
}


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dev") / "issuer.pem"
    path.write_bytes(LocalIssuer().key.as_pem(private=True))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def issuer(key_file: Path) -> Iterator[LocalIssuer]:
    """What `clerkguard dev-issuer --key-file` runs: same kid, same key, same derived secret key."""
    key = load_key_file(key_file)
    server = LocalIssuer(kid=dev_kid(key), secret_key=dev_secret_key(key))
    server.key = key
    with server:
        yield server


@pytest.fixture(autouse=True)
def _healthy(issuer: LocalIssuer) -> Iterator[None]:
    issuer.set_fault(Fault())
    issuer.set_backend_fault(Fault())
    issuer.backend_requests.clear()
    issuer.reset_count()
    yield
    issuer.set_backend_fault(Fault())


@pytest.fixture
def env(issuer: LocalIssuer) -> dict[str, str]:
    """The dev issuer's lines: its keys, and its Backend API fake with its secret key."""
    return {**issuer.env(), "CLERK_API_URL": issuer.api_url, "CLERK_SECRET_KEY": issuer.secret_key}


def _no_leak(secrets: tuple[str, ...], *outputs: str) -> None:
    for output in outputs:
        for secret in secrets:
            for part in (secret, *secret.split(".")):
                assert part not in output


def _rows(stdout: str) -> dict[str, str]:
    return dict(line.strip().split(None, 1) for line in stdout.splitlines()[1:])


# Every kind and format, as the issuer makes them: (kind, format, token maker, expected subject).
MAKERS: dict[str, tuple[str, str, Callable[[LocalIssuer], str], str]] = {
    "session": ("session_token", "jwt", lambda i: i.mint(user_id="user_s"), "user_s"),
    "m2m-jwt": (
        "m2m_token",
        "jwt",
        lambda i: i.mint_m2m(machine_id="mch_a", scopes=["mch_b", "mch_c"]),
        "mch_a",
    ),
    "oauth-jwt": (
        "oauth_token",
        "jwt",
        lambda i: i.mint_oauth(user_id="user_o", scopes=["email", "profile"]),
        "user_o",
    ),
    "m2m-opaque": (
        "m2m_token",
        "opaque",
        lambda i: i.issue_m2m_token(machine_id="mch_a", scopes=["mch_b", "mch_c"]),
        "mch_a",
    ),
    "oauth-opaque": (
        "oauth_token",
        "opaque",
        lambda i: i.issue_oauth_token(user_id="user_o", scopes=["email", "profile"]),
        "user_o",
    ),
    "api-key": (
        "api_key",
        "opaque",
        lambda i: i.issue_api_key(subject="org_k", name="ci key", scopes=["email", "profile"]),
        "org_k",
    ),
}


@pytest.mark.parametrize("case", list(MAKERS))
def test_every_kind_verifies_when_accepted(issuer: LocalIssuer, env: dict[str, str], case: str) -> None:
    kind, token_format, make, subject = MAKERS[case]
    token = make(issuer)
    result = run_in_process("verify", token, "--accepts-token", kind, env=env)
    assert result.returncode == 0, result.stderr
    rows = _rows(result.stdout)
    if kind == "session_token":
        assert result.stdout.startswith("VALID session token (issuer ")
        assert rows["user_id"] == subject
    else:
        where = "verified locally" if token_format == "jwt" else f"Backend API at {issuer.api_url}"
        assert result.stdout.startswith(f"VALID {LABELS[kind]} ({token_format.replace('jwt', 'JWT')}")
        assert where in result.stdout.splitlines()[0]
        assert rows["kind"] == kind
        assert rows["format"] == token_format
        assert rows["subject"] == subject
        assert rows["scopes"] in ("mch_b, mch_c", "email, profile")
        assert rows["name"] == ("ci key" if kind == "api_key" else "-")
        if kind == "api_key":
            assert rows["expires_at"] == "never"
        else:
            assert "(expires in " in rows["expires_at"]
    # JWTs never reach the Backend API; an opaque token makes exactly one call.
    assert len(issuer.backend_requests) == (token_format == "opaque")
    _no_leak((token, issuer.secret_key), result.stdout, result.stderr)


@pytest.mark.parametrize("case", list(MAKERS))
def test_every_kind_as_json_with_any(issuer: LocalIssuer, env: dict[str, str], case: str) -> None:
    kind, token_format, make, subject = MAKERS[case]
    token = make(issuer)
    result = run_in_process("verify", token, "--accepts-token", "any", "--json", env=env)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["valid"] is True
    assert body["kind"] == kind
    if kind == "session_token":
        assert body["session"]["user_id"] == subject
        return
    credential = body["credential"]
    assert (credential["kind"], credential["format"], credential["subject"]) == (kind, token_format, subject)
    assert len(credential["scopes"]) == 2
    assert credential["id"].startswith({"m2m_token": "mt_", "oauth_token": "oat_", "api_key": "ak_"}[kind])
    assert "token" not in body["raw"]
    assert "secret" not in body["raw"]
    _no_leak((token, issuer.secret_key), result.stdout, result.stderr)


@pytest.mark.parametrize("case", [c for c in MAKERS if c != "session"])
def test_machine_kinds_are_refused_by_default_like_the_api(
    issuer: LocalIssuer, env: dict[str, str], case: str
) -> None:
    kind, _, make, _ = MAKERS[case]
    token = make(issuer)
    result = run_in_process("verify", token, env=env)
    assert_clean_failure(result, 1)
    assert result.stderr.startswith("INVALID: 401 token-type-not-accepted (")
    assert f"hint: this is an {LABELS[kind]} ({kind})" in result.stderr
    assert f"--accepts-token {kind}" in result.stderr
    assert issuer.backend_requests == []  # refused before any request
    _no_leak((token,), result.stdout, result.stderr)


@pytest.mark.parametrize(
    ("case", "accepts"),
    [
        ("session", "m2m_token,oauth_token,api_key"),
        ("m2m-jwt", "oauth_token"),
        ("oauth-jwt", "m2m_token"),
        ("m2m-opaque", "session_token,api_key"),
        ("oauth-opaque", "api_key"),
        ("api-key", "m2m_token,oauth_token"),
    ],
)
def test_wrong_kinds_are_refused_before_any_request(
    issuer: LocalIssuer, env: dict[str, str], case: str, accepts: str
) -> None:
    _, _, make, _ = MAKERS[case]
    result = run_in_process("verify", make(issuer), "--accepts-token", accepts, "--json", env=env)
    assert result.returncode == 1
    assert json.loads(result.stdout)["reason"] == "token-type-not-accepted"
    assert issuer.backend_requests == []


def test_accepts_token_is_repeatable_and_takes_comma_lists(issuer: LocalIssuer, env: dict[str, str]) -> None:
    key = issuer.issue_api_key()
    m2m = issuer.mint_m2m()
    for args in (
        ["--accepts-token", "m2m_token, api_key"],
        ["--accepts-token", "m2m_token", "--accepts-token", "api_key"],
    ):
        for token in (key, m2m):
            assert run_in_process("verify", token, *args, env=env).returncode == 0
        refused = run_in_process("verify", issuer.mint(), *args, env=env)
        assert "token-type-not-accepted" in refused.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [("m2m", "unknown kind 'm2m'"), ("any,api_key", "not 'any'")],
)
def test_a_bad_accepts_token_is_a_usage_error(env: dict[str, str], value: str, message: str) -> None:
    result = run_in_process("verify", "ak_x", "--accepts-token", value, env=env)
    assert_clean_failure(result, 64)
    assert "--accepts-token" in result.stderr
    assert message in result.stderr


def test_an_empty_accepts_token_list_means_the_default(env: dict[str, str]) -> None:
    result = run_in_process("verify", "ak_x", "--accepts-token", ",", env=env)
    assert_clean_failure(result, 1)
    assert "token-type-not-accepted" in result.stderr


@pytest.mark.parametrize(
    "fault",
    [Fault(status=500), Fault(status=429), Fault(close=True), Fault(delay=3.0), Fault(body=b"<html>")],
    ids=["500", "429", "hang-up", "slow", "garbage"],
)
def test_backend_api_outage_exits_2_never_1(issuer: LocalIssuer, env: dict[str, str], fault: Fault) -> None:
    issuer.set_backend_fault(fault)
    token = issuer.issue_api_key()
    result = run_in_process("verify", token, "--accepts-token", "api_key", "--timeout", "0.5", env=env)
    assert_clean_failure(result, 2)
    assert result.stderr.startswith("UNAVAILABLE: 503 backend-api-unavailable (")
    _no_leak((token, issuer.secret_key), result.stdout, result.stderr)
    as_json = run_in_process("verify", token, "--accepts-token", "any", "--json", "--timeout", "0.5", env=env)
    assert as_json.returncode == 2
    body = json.loads(as_json.stdout)
    assert (body["status"], body["reason"]) == (503, "backend-api-unavailable")
    assert body["retry_after"] >= 1


def test_an_outage_in_a_real_process_logs_where_but_no_secret(
    issuer: LocalIssuer, env: dict[str, str]
) -> None:
    issuer.set_backend_fault(status=502)
    token = issuer.issue_m2m_token()
    result = run("verify", "-", "--accepts-token", "m2m_token", stdin=token, env=env)
    assert_clean_failure(result, 2)
    assert "UNAVAILABLE: 503 backend-api-unavailable" in result.stderr
    assert f"{issuer.api_url}/v1/m2m_tokens/verify" in result.stderr  # the library's warning: where
    _no_leak((token, issuer.secret_key), result.stdout, result.stderr)


def test_jwt_machine_tokens_need_no_backend_api(issuer: LocalIssuer, env: dict[str, str]) -> None:
    issuer.set_backend_fault(status=500)
    for token, kind in ((issuer.mint_m2m(), "m2m_token"), (issuer.mint_oauth(), "oauth_token")):
        assert run_in_process("verify", token, "--accepts-token", kind, env=env).returncode == 0
    assert issuer.backend_requests == []


def test_revoked_expired_and_unknown_opaque_tokens_exit_1(issuer: LocalIssuer, env: dict[str, str]) -> None:
    revoked = issuer.issue_api_key()
    issuer.revoke(revoked)
    cases = {
        revoked: "token-revoked",
        issuer.issue_oauth_token(expires_in=-5): "token-expired",
        "ak_made_up_by_someone": "token-invalid",
        "mt_" + "x" * 600: "token-too-large",
    }
    for token, reason in cases.items():
        result = run_in_process("verify", token, "--accepts-token", "any", env=env)
        assert_clean_failure(result, 1)
        assert result.stderr.startswith(f"INVALID: 401 {reason} (")


def test_opaque_tokens_need_a_secret_key_exit_78(issuer: LocalIssuer, env: dict[str, str]) -> None:
    without = {k: v for k, v in env.items() if k != "CLERK_SECRET_KEY"}
    key = run_in_process("verify", issuer.issue_api_key(), "--accepts-token", "api_key", env=without)
    assert_clean_failure(key, 78)
    assert "an opaque API key (ak_...) is verified by the Backend API: set CLERK_SECRET_KEY" in key.stderr
    m2m = run_in_process("verify", issuer.issue_m2m_token(), "--accepts-token", "any", env=without)
    assert_clean_failure(m2m, 78)
    assert "set CLERK_MACHINE_SECRET_KEY or CLERK_SECRET_KEY" in m2m.stderr
    # Not accepted anyway: the refusal, not a demand for configuration it would not use.
    refused = run_in_process("verify", issuer.issue_api_key(), env=without)
    assert "token-type-not-accepted" in refused.stderr
    assert issuer.backend_requests == []


def test_opaque_tokens_need_only_the_backend_api_settings(issuer: LocalIssuer) -> None:
    # No publishable key, JWKS or issuer: an opaque token never reaches them.
    only_backend = {"CLERK_API_URL": issuer.api_url, "CLERK_SECRET_KEY": issuer.secret_key}
    result = run_in_process(
        "verify", issuer.issue_api_key(subject="user_k"), "--accepts-token", "api_key", env=only_backend
    )
    assert result.returncode == 0, result.stderr
    assert _rows(result.stdout)["subject"] == "user_k"
    # M2M tokens with a machine secret key alone (Clerk's M2M setup), through --api-url.
    machine_only = {"CLERK_MACHINE_SECRET_KEY": issuer.machine_secret_key}
    m2m = run_in_process(
        "verify",
        issuer.issue_m2m_token(machine_id="mch_z"),
        "--accepts-token",
        "m2m_token",
        "--api-url",
        issuer.api_url,
        env=machine_only,
    )
    assert m2m.returncode == 0, m2m.stderr
    assert _rows(m2m.stdout)["subject"] == "mch_z"
    assert issuer.backend_requests[-1].authorization == f"Bearer {issuer.machine_secret_key}"
    assert issuer.request_count == 0  # no JWKS fetched for either


def test_a_wrong_secret_key_is_unavailable_and_never_printed(
    issuer: LocalIssuer, env: dict[str, str]
) -> None:
    wrong = {**env, "CLERK_SECRET_KEY": "sk_test_not_the_right_one"}
    result = run("verify", issuer.issue_api_key(), "--accepts-token", "api_key", env=wrong)
    assert_clean_failure(result, 2)
    assert "UNAVAILABLE: 503 backend-api-unavailable" in result.stderr
    assert "HTTP 401 (is the secret key right?)" in result.stderr  # the library's warning says why
    assert "not_the_right_one" not in result.stdout + result.stderr
    malformed = {**env, "CLERK_SECRET_KEY": "no-sk-prefix-secret"}
    bad = run_in_process("verify", issuer.issue_api_key(), "--accepts-token", "api_key", env=malformed)
    assert_clean_failure(bad, 78)
    assert "CLERK_SECRET_KEY" in bad.stderr
    assert "no-sk-prefix-secret" not in bad.stderr


def test_a_non_https_backend_api_is_a_configuration_error(issuer: LocalIssuer, env: dict[str, str]) -> None:
    result = run_in_process(
        "verify",
        issuer.issue_api_key(),
        "--accepts-token",
        "api_key",
        "--api-url",
        "http://api.example",
        env=env,
    )
    assert_clean_failure(result, 78)
    assert "api_url" in result.stderr


# -- decode ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["session", "m2m-jwt", "oauth-jwt"])
def test_decode_names_the_kind_of_a_jwt(issuer: LocalIssuer, case: str) -> None:
    kind, _, make, subject = MAKERS[case]
    token = make(issuer)
    result = run_in_process("decode", token)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("UNVERIFIED: decoded WITHOUT checking the signature")
    assert lines[2].startswith(
        f"kind    a{'n' if kind != 'session_token' else ''} {LABELS[kind]} ({kind}), a JWT"
    )
    assert (f"--accepts-token {kind}" in lines[2]) is (kind != "session_token")
    assert re.search(rf'^  sub +"{subject}"$', result.stdout, re.MULTILINE)
    body = json.loads(run_in_process("decode", token, "--json").stdout)
    assert (body["kind"], body["format"], body["verified"]) == (kind, "jwt", False)
    assert body["claims"]["sub"] == subject


def test_decode_tells_an_m2m_jwt_by_its_subject_when_the_header_has_no_category(issuer: LocalIssuer) -> None:
    # Clerk's rule (and the verifier's): no `cat`, `sub` mch_... -> an M2M token.
    from clerkguard.testing import MISSING

    token = issuer.mint_m2m(header={"cat": MISSING})
    assert json.loads(run_in_process("decode", token, "--json").stdout)["kind"] == "m2m_token"
    assert json.loads(run_in_process("decode", issuer.mint(header={"cat": MISSING}), "--json").stdout)[
        "kind"
    ] == ("session_token")


def test_decode_of_a_header_verify_refuses_has_no_kind(issuer: LocalIssuer) -> None:
    token = issuer.mint(header={"cat": "cl_template_category"})
    result = run_in_process("decode", token)
    assert result.returncode == 0
    assert "kind    none that verify accepts (see the note below)" in result.stdout
    assert "note: verify would reject this token before any key lookup: token-type-mismatch" in result.stdout
    assert json.loads(run_in_process("decode", token, "--json").stdout)["kind"] is None


@pytest.mark.parametrize("case", ["m2m-opaque", "oauth-opaque", "api-key"])
def test_decode_of_an_opaque_token_says_what_it_is_and_that_it_cannot_be_decoded(
    issuer: LocalIssuer, case: str
) -> None:
    kind, _, make, subject = MAKERS[case]
    token = make(issuer)
    result = run_in_process("decode", token)
    assert result.returncode == 0, result.stderr
    prefix = {"m2m_token": "mt_", "oauth_token": "oat_", "api_key": "ak_"}[kind]
    assert result.stdout.startswith(f"UNVERIFIED: an opaque {LABELS[kind]} ({kind}, {prefix}...).")
    assert "cannot be decoded locally" in result.stdout
    assert f"clerkguard verify --accepts-token {kind}" in result.stdout
    assert subject not in result.stdout  # nothing read out of it, even from a dev token
    _no_leak((token,), result.stdout, result.stderr)
    body = json.loads(run_in_process("decode", "-", "--json", stdin=token).stdout)
    assert body == {
        "verified": False,
        "kind": kind,
        "format": "opaque",
        "header": None,
        "claims": None,
        "times": {},
        "shape_and_header": "ok",
    }
    assert issuer.backend_requests == []  # decode asks nobody


def test_decode_notes_an_opaque_token_verify_would_refuse_unasked() -> None:
    result = run_in_process("decode", "-", stdin="ak_has a space")
    assert result.returncode == 0
    assert "note: verify would reject this token before any request: token-malformed" in result.stdout


# -- mint ----------------------------------------------------------------------------------------
def _mint(key_file: Path, issuer: LocalIssuer, *args: str) -> str:
    minted = run("mint", "--key-file", str(key_file), *args, env={"CLERK_ISSUER": issuer.issuer})
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert minted.stdout == token + "\n"  # only the token: TOKEN=$(clerkguard mint ...)
    return token


@pytest.mark.parametrize(
    ("args", "kind", "token_format", "expected"),
    [
        (("--user", "user_m", "--role", "admin"), "session_token", "jwt", {"user_id": "user_m"}),
        (
            (
                "--kind",
                "m2m",
                "--subject",
                "mch_m",
                "--scopes",
                "mch_x,mch_y",
                "--claims",
                '{"tier": "gold"}',
            ),
            "m2m_token",
            "jwt",
            {
                "subject": "mch_m",
                "scopes": "mch_x, mch_y",
                "claims": '{"scopes": "mch_x mch_y", "tier": "gold"}',
            },
        ),
        (
            (
                "--kind",
                "oauth",
                "--subject",
                "user_o",
                "--scopes",
                "email profile",
                "--client-id",
                "client_z",
            ),
            "oauth_token",
            "jwt",
            {"subject": "user_o", "scopes": "email, profile", "client_id": "client_z"},
        ),
        (
            ("--kind", "m2m_token", "--opaque", "--scopes", "mch_x", "--claims", '{"tier": "gold"}'),
            "m2m_token",
            "opaque",
            {"subject": "mch_dev", "scopes": "mch_x", "claims": '{"tier": "gold"}'},
        ),
        (
            ("--kind", "oauth", "--opaque", "--scopes", "email", "--expires-in", "120"),
            "oauth_token",
            "opaque",
            {"subject": "user_dev", "scopes": "email", "client_id": "client_dev"},
        ),
        (
            (
                "--kind",
                "api_key",
                "--subject",
                "org_a",
                "--name",
                "ci",
                "--scopes",
                "read",
                "--scopes",
                "write",
            ),
            "api_key",
            "opaque",
            {"subject": "org_a", "name": "ci", "scopes": "read, write", "expires_at": "never"},
        ),
    ],
    ids=["session", "m2m-jwt", "oauth-jwt", "m2m-opaque", "oauth-opaque", "api-key"],
)
def test_mint_makes_every_kind_and_verify_takes_it(
    key_file: Path,
    issuer: LocalIssuer,
    env: dict[str, str],
    args: tuple[str, ...],
    kind: str,
    token_format: str,
    expected: dict[str, str],
) -> None:
    token = _mint(key_file, issuer, *args)
    decoded = json.loads(run_in_process("decode", token, "--json").stdout)
    assert (decoded["kind"], decoded["format"]) == (kind, token_format)
    verified = run("verify", "-", "--accepts-token", kind, stdin=token, env=env)
    assert verified.returncode == 0, verified.stderr
    rows = _rows(verified.stdout)
    for name, value in expected.items():
        assert rows[name] == value
    if kind != "session_token":
        assert rows["format"] == token_format
    # An opaque token was judged by the Backend API fake, having never been issued by it.
    assert len(issuer.backend_requests) == (token_format == "opaque")
    refused = run_in_process(
        "verify", token, "--accepts-token", "session_token" if kind != "session_token" else "api_key", env=env
    )
    assert "token-type-not-accepted" in refused.stderr


@pytest.mark.parametrize(
    "kind", [("m2m",), ("oauth",), ("m2m", "--opaque"), ("oauth", "--opaque"), ("api_key",)]
)
def test_minted_machine_tokens_expire(
    key_file: Path, issuer: LocalIssuer, env: dict[str, str], kind: tuple[str, ...]
) -> None:
    token = _mint(key_file, issuer, "--kind", *kind, "--expires-in", "-30")
    result = run_in_process("verify", token, "--accepts-token", "any", env=env)
    assert_clean_failure(result, 1)
    assert "token-expired" in result.stderr


def test_self_contained_tokens_need_the_issuers_key(issuer: LocalIssuer, env: dict[str, str]) -> None:
    stranger = LocalIssuer()  # another key: its tokens are not this issuer's
    forged = stranger.issue_api_key(self_contained=True)
    mine = LocalIssuer()
    mine.key = issuer.key
    good = mine.issue_api_key(subject="user_g", self_contained=True)
    tampered = good[:-44] + ("A" if good[-44] != "A" else "B") + good[-43:]
    for token, reason in ((forged, "token-invalid"), (tampered, "token-invalid")):
        result = run_in_process("verify", token, "--accepts-token", "api_key", env=env)
        assert_clean_failure(result, 1)
        assert f"401 {reason}" in result.stderr
    assert run_in_process("verify", good, "--accepts-token", "api_key", env=env).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--kind", "m2m", "--role", "admin"), "--role applies to --kind session only"),
        (("--kind", "api_key", "--v1"), "--v1 applies to --kind session only"),
        (("--scopes", "read"), "--scopes applies to --kind api_key, m2m, oauth only"),
        (("--opaque",), "--opaque applies to --kind m2m, oauth only"),
        (("--kind", "oauth", "--claims", "{}"), "--claims applies to --kind api_key, m2m only"),
        (("--kind", "m2m", "--name", "n"), "--name applies to --kind api_key only"),
        (("--kind", "m2m", "--subject", "user_1"), "machine id (mch_...)"),
        (("--kind", "oauth", "--subject", "mch_1"), "acts for a user"),
        (("--kind", "api_key", "--claims", "[1]"), "--claims must be a JSON object"),
        (("--kind", "api_key", "--claims", "{"), "--claims must be a JSON object"),
        (
            ("--kind", "api_key", "--scopes", ",".join(f"scope{i}" for i in range(200))),
            "at most 512 characters",
        ),
        (("--kind", "jwt"), "not one of session, m2m, oauth, api_key"),
    ],
)
def test_mint_refuses_what_it_cannot_make(key_file: Path, args: tuple[str, ...], message: str) -> None:
    result = run_in_process("mint", "--key-file", str(key_file), "--issuer", "http://127.0.0.1:1", *args)
    assert_clean_failure(result, 64)
    assert message in result.stderr
    assert result.stdout == ""


def test_opaque_mint_needs_no_issuer_but_jwts_do(key_file: Path) -> None:
    assert run_in_process("mint", "--key-file", str(key_file), "--kind", "api_key").returncode == 0
    result = run_in_process("mint", "--key-file", str(key_file), "--kind", "m2m")
    assert_clean_failure(result, 64)
    assert "--issuer" in result.stderr
