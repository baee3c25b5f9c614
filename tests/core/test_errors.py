"""Errors: the AuthError contract, and no token, claim value or secret in any message, repr or log."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from clerkguard import (
    AuthError,
    ClerkAuth,
    ClerkGuardError,
    ConfigurationError,
    Forbidden,
    KeysUnavailable,
    MissingDependencyError,
    NotAuthenticated,
)
from clerkguard.testing import MISSING, LocalIssuer

from .support import FrozenClock, Verifier, header_for, payload_bytes, sign_raw

# -- the contract ---------------------------------------------------------------------


def test_hierarchy() -> None:
    assert issubclass(AuthError, ClerkGuardError)
    assert issubclass(ConfigurationError, ClerkGuardError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(MissingDependencyError, ImportError)
    for cls in (NotAuthenticated, Forbidden, KeysUnavailable):
        assert issubclass(cls, AuthError)


def test_invalid_token_error() -> None:
    error = NotAuthenticated("token-expired", "the token has expired")
    assert (error.status, error.reason, error.detail) == (401, "token-expired", "the token has expired")
    assert error.token_present is True
    assert error.www_authenticate == 'Bearer error="invalid_token", error_description="the token has expired"'
    assert error.headers() == {"WWW-Authenticate": error.www_authenticate}
    assert error.to_dict() == {
        "error": "invalid_token",
        "reason": "token-expired",
        "detail": "the token has expired",
    }
    assert repr(error) == "NotAuthenticated(status=401, reason='token-expired')"
    assert str(error) == "token-expired: the token has expired"


def test_missing_token_challenge_has_no_error_code() -> None:
    # RFC 6750 section 3.1: a request without credentials gets a bare challenge.
    error = NotAuthenticated("token-missing", token_present=False)
    assert error.www_authenticate == "Bearer"
    assert error.headers() == {"WWW-Authenticate": "Bearer"}
    assert error.to_dict() == {"error": "unauthorized", "reason": "token-missing", "detail": "token-missing"}
    assert error.detail == "token-missing"  # a detail is always there


def test_forbidden() -> None:
    error = Forbidden()
    assert (error.status, error.reason) == (403, "forbidden")
    assert error.detail
    assert error.www_authenticate == (
        'Bearer error="insufficient_scope", error_description="the session is not allowed to do this"'
    )
    assert error.to_dict() == {
        "error": "insufficient_scope",
        "reason": "forbidden",
        "detail": "the session is not allowed to do this",
    }
    assert Forbidden("role-required").to_dict()["reason"] == "role-required"


@pytest.mark.parametrize(
    ("retry_after", "header"), [(None, "1"), (0.0, "1"), (0.2, "1"), (2.1, "3"), (30, "30")]
)
def test_keys_unavailable_carries_retry_after(retry_after: float | None, header: str) -> None:
    error = KeysUnavailable(retry_after=retry_after)
    assert (error.status, error.reason) == (503, "jwks-unavailable")
    assert error.headers() == {"WWW-Authenticate": "Bearer", "Retry-After": header}
    assert error.to_dict() == {
        "error": "temporarily_unavailable",
        "reason": "jwks-unavailable",
        "detail": "signing keys are temporarily unavailable",
    }


@pytest.mark.parametrize(
    ("detail", "description"),
    [
        ('say "no"', "say 'no'"),
        ("back\\slash", "back'slash"),
        ("line\r\nSet-Cookie: x=1", "line??Set-Cookie: x=1"),
        ("caf\u00e9 \u2603", "caf? ?"),
        ("tab\there", "tab?here"),
    ],
)
def test_error_description_is_always_a_valid_quoted_string(detail: str, description: str) -> None:
    # RFC 6750 section 3: error_description is %x20-21 / %x23-5B / %x5D-7E only.
    for error in (NotAuthenticated("token-expired", detail), Forbidden("authorization-denied", detail)):
        challenge = error.www_authenticate
        assert challenge.endswith(f'error_description="{description}"')
        assert all(" " <= c <= "~" for c in challenge)
        assert challenge.count('"') == 4
        assert error.to_dict()["detail"] == detail  # JSON carries it as is: JSON escapes it itself


def test_generic_auth_error_keeps_its_arguments() -> None:
    error = AuthError(401, "token-invalid-claims", "bad claims", token_present=True)
    assert (error.status, error.reason, error.detail) == (401, "token-invalid-claims", "bad claims")


# -- nothing but an AuthError, whatever is passed --------------------------------------


class _Hostile:
    """An object whose comparison and hashing explode."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("compared")

    def __hash__(self) -> int:
        raise RuntimeError("hashed")


async def test_none_and_empty_are_a_missing_token(verify: Verifier) -> None:
    for token in (None, ""):
        error = await verify.error(token)
        assert (error.status, error.reason, error.token_present) == (401, "token-missing", False)


@pytest.mark.parametrize(
    "token",
    [
        b"header.payload.signature",
        bytearray(b"a.b.c"),
        123,
        1.5,
        True,
        ["a.b.c"],
        {"token": "a.b.c"},
        _Hostile(),
    ],
    ids=lambda v: type(v).__name__,
)
async def test_non_strings_are_malformed_not_type_errors(verify: Verifier, token: Any) -> None:
    error = await verify.error(token)
    assert (error.status, error.reason) == (401, "token-malformed")


async def test_str_subclass_is_judged_like_a_string(verify: Verifier, mint: Callable[..., str]) -> None:
    class Token(str):
        pass

    assert (await verify(Token(mint()))).user_id


# -- no token, claim value or secret leaks ----------------------------------------------

CANARY = "LEAKCANARY"


def _leak_cases(issuer: LocalIssuer, attacker: LocalIssuer, clock: FrozenClock) -> dict[str, tuple[str, str]]:
    """label -> (token, expected reason): failing at every stage, each carrying the canary."""
    user = f"user_{CANARY}"

    def mint(**options: Any) -> str:
        return issuer.mint(issued_at=clock.now, user_id=user, **options)

    claims = issuer.claims(issued_at=clock.now, user_id=user)
    return {
        "too-large": (mint(filler=CANARY * 900), "token-too-large"),
        "shape": (mint() + "." + CANARY, "token-malformed"),
        "non-ascii": (mint().replace(".", f".{CANARY}é", 1), "token-malformed"),
        "algorithm": (mint(header={"alg": f"HS256{CANARY}"}), "token-invalid-algorithm"),
        "header": (mint(header={"typ": CANARY}), "token-invalid-header"),
        "category": (mint(header={"cat": CANARY}), "token-type-mismatch"),
        "unknown-kid": (mint(header={"kid": f"ins_{CANARY}"}), "jwk-kid-mismatch"),
        "forged": (mint(key=attacker.key), "token-invalid-signature"),
        "bad-json": (
            sign_raw(header_for(issuer), payload_bytes(claims, sub=f'"{CANARY}"'), issuer.key),
            "token-malformed",
        ),
        "expired": (mint(expires_in=-3600), "token-expired"),
        "issuer": (mint(iss=f"https://{CANARY}.example"), "token-invalid-issuer"),
        "azp": (mint(azp=f"https://{CANARY}.example"), "token-invalid-authorized-party"),
        "subject": (mint(sub=[CANARY]), "token-invalid-subject"),
        "times": (mint(exp=CANARY), "token-invalid-claims"),
        "pending": (mint(status="pending"), "session-pending"),
        "no-sid": (mint(sid=MISSING), "token-invalid-claims"),
    }


def _texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error)), repr(error.args)]
    if isinstance(error, AuthError):
        texts += [
            error.detail,
            error.reason,
            error.www_authenticate,
            repr(error.headers()),
            repr(error.to_dict()),
        ]
    return texts


@pytest.fixture(scope="module")
def attacker() -> LocalIssuer:
    """A key pair that is not the issuer's (no server needed)."""
    return LocalIssuer()


async def test_errors_and_logs_never_contain_the_token_or_its_claims(
    make_verifier: Callable[..., Verifier],
    clerk_issuer: LocalIssuer,
    attacker: LocalIssuer,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    verify = make_verifier(authorized_parties=[clerk_issuer.azp])
    cases = _leak_cases(clerk_issuer, attacker, clock)
    for label, (token, reason) in cases.items():
        error = await verify.error(token)
        assert (label, error.reason) == (label, reason)
        for text in _texts(error):
            assert CANARY not in text, label
            for part in token.split("."):
                assert part not in text, label
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert CANARY not in logged


def test_secret_key_never_appears_in_errors_reprs_or_logs(
    clerk_issuer: LocalIssuer, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = f"sk_test_{CANARY}wrongsecret"
    auth = ClerkAuth(
        secret_key=secret, api_url=clerk_issuer.api_url, issuer=clerk_issuer.issuer, clock=clock, env={}
    )
    try:
        # The Backend API answers 401 to a wrong secret: keys are unavailable, said without the key.
        with pytest.raises(AuthError) as info:
            auth.verify(clerk_issuer.mint(issued_at=clock.now))
        assert info.value.status == 503
        texts = [*_texts(info.value), repr(auth), str(auth), repr(auth.stats)]
        assert not any(CANARY in text for text in texts)
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert CANARY not in logged
        assert caplog.records, "the failed fetch is logged (without the secret)"
    finally:
        auth.close()


@pytest.mark.parametrize(
    "options",
    [
        {"secret_key": f"sk_live_{CANARY}\x00"},
        {"secret_key": f"pk_live_{CANARY}"},
        {"secret_key": "sk_test_" + CANARY, "jwks_uri": "http://evil.example/jwks"},
        {"secret_key": "sk_test_" + CANARY},  # no issuer
        {"secret_key": "sk_test_" + CANARY, "issuer": "https://x.example", "api_url": "ftp://x"},
        {"secret_key": "sk_test_" + CANARY, "issuer": "https://x.example", "clock_skew": -1},
    ],
)
def test_configuration_errors_never_echo_the_secret(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        ClerkAuth(env={}, **options)
    for text in (str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))):
        assert CANARY not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:CANARY@keys.example/jwks?api_key=CANARY#frag", "https://keys.example/jwks"),
        ("https://keys.example:8443/v1/jwks?token=CANARY", "https://keys.example:8443/v1/jwks"),
        ("http://a%40b:CANARY@127.0.0.1:9/x", "http://127.0.0.1:9/x"),
        ("http://u:CANARY@[::1]:8080/jwks", "http://[::1]:8080/jwks"),
    ],
)
def test_repr_shows_the_jwks_url_without_userinfo_query_or_fragment(url: str, shown: str) -> None:
    auth = ClerkAuth(jwks_uri=url, issuer="https://issuer.example", env={})
    try:
        text = repr(auth)
        assert "CANARY" not in text
        assert f"keys={shown!r}" in text
    finally:
        auth.close()
