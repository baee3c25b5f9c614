"""Which kind a token is, and which kinds a call accepts (locally verified JWT kinds)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clerkguard import AuthError, ClerkAuth, ConfigurationError, MachineCredential, Session
from clerkguard.testing import M2M_CATEGORY, MISSING, LocalIssuer


def _reason(auth: ClerkAuth, token: str, accepts: Any = "session_token") -> str:
    with pytest.raises(AuthError) as info:
        auth.verify(token, accepts_token=accepts)
    assert info.value.status == 401
    return info.value.reason


def test_a_jwt_m2m_token_verifies_locally_into_a_machine_credential(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    token = issuer.mint_m2m(machine_id="mch_service_a", scopes=["mch_service_b"], claims={"team": "x"})
    credential = auth.verify(token, accepts_token="m2m_token")
    assert isinstance(credential, MachineCredential)
    assert (credential.token_type, credential.format) == ("m2m_token", "jwt")
    assert (credential.subject, credential.machine_id, credential.user_id) == ("mch_service_a",) * 2 + (None,)
    assert credential.scopes == ("mch_service_b",)
    assert credential.has(scope="mch_service_b")
    assert not credential.has(scope="mch_other")
    assert dict(credential.claims) == {
        "team": "x",
        "scopes": "mch_service_b",
    }  # as Clerk: scopes is a custom claim
    assert credential.id.startswith("mt_")
    assert not issuer.backend_requests  # no Backend API call for a JWT
    assert auth.verify(token, accepts_token="m2m_token") is credential  # cached like sessions


def test_a_jwt_oauth_token_verifies_locally(issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]) -> None:
    auth = make_auth()
    for typ in ("at+jwt", "application/at+jwt"):
        token = issuer.mint_oauth(user_id="user_1", client_id="client_9", scopes=["read:orders"], typ=typ)
        credential = auth.verify(token, accepts_token=["oauth_token", "api_key"])
        assert isinstance(credential, MachineCredential)
        assert (credential.token_type, credential.subject, credential.client_id) == (
            "oauth_token",
            "user_1",
            "client_9",
        )
        assert credential.user_id == "user_1"
        assert credential.has(scope="read:orders")
        assert not credential.has(role="admin")
        assert not credential.has(permission="org:a:b")
    assert not issuer.backend_requests


def test_an_m2m_jwt_without_category_is_told_apart_by_its_subject(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    token = issuer.mint_m2m(header={"cat": MISSING})
    assert auth.verify(token, accepts_token="m2m_token").token_type == "m2m_token"
    assert _reason(auth, token) == "token-type-not-accepted"


@pytest.mark.parametrize("kind", ["m2m", "oauth", "opaque_m2m", "opaque_oauth", "api_key"])
def test_the_session_path_refuses_every_machine_kind_before_any_request(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], kind: str
) -> None:
    auth = make_auth()
    token = {
        "m2m": issuer.mint_m2m,
        "oauth": issuer.mint_oauth,
        "opaque_m2m": issuer.issue_m2m_token,
        "opaque_oauth": issuer.issue_oauth_token,
        "api_key": issuer.issue_api_key,
    }[kind]()
    issuer.reset_count()
    assert _reason(auth, token) == "token-type-not-accepted"
    assert issuer.request_count == 0  # not even the JWKS
    assert not issuer.backend_requests


@pytest.mark.parametrize("accepts", ["m2m_token", "oauth_token", "api_key", ["m2m_token", "api_key"]])
def test_machine_paths_refuse_session_tokens(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], accepts: Any
) -> None:
    auth = make_auth()
    assert _reason(auth, issuer.mint(), accepts) == "token-type-not-accepted"


def test_a_cached_token_is_still_refused_where_its_kind_is_not_accepted(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    session_token, m2m = issuer.mint(), issuer.mint_m2m()
    assert isinstance(auth.verify(session_token, accepts_token="any"), Session)
    assert auth.verify(m2m, accepts_token="any").token_type == "m2m_token"
    assert _reason(auth, session_token, "m2m_token") == "token-type-not-accepted"
    assert _reason(auth, m2m) == "token-type-not-accepted"


def test_category_and_subject_must_agree(issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]) -> None:
    auth = make_auth()
    # An M2M category on a user's token, and a machine subject under the session category.
    assert _reason(auth, issuer.mint_m2m(machine_id="user_1"), "m2m_token") == "token-type-mismatch"
    assert _reason(auth, issuer.mint(user_id="mch_1"), "any") == "token-type-mismatch"
    # An OAuth typ with a Clerk category, and an OAuth token for a machine.
    assert _reason(auth, issuer.mint_oauth(header={"cat": M2M_CATEGORY}), "any") == "token-type-mismatch"
    assert _reason(auth, issuer.mint_oauth(user_id="mch_1"), "oauth_token") == "token-type-mismatch"
    # A JWT-template category is neither kind.
    assert _reason(auth, issuer.mint_m2m(header={"cat": "cl_B7d4PD222AAA"}), "any") == "token-type-mismatch"


def test_machine_jwts_get_the_same_strictness(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    other = LocalIssuer(kid=issuer.kid)
    assert _reason(auth, other.mint_m2m(), "m2m_token") == "token-invalid-signature"
    assert _reason(auth, issuer.mint_m2m(expires_in=-60), "m2m_token") == "token-expired"
    assert _reason(auth, issuer.mint_oauth(exp=MISSING), "oauth_token") == "token-invalid-claims"
    assert _reason(auth, issuer.mint_oauth(nbf=issuer.clock() + 600), "oauth_token") == "token-not-active-yet"
    assert _reason(auth, issuer.mint_m2m(header={"alg": "HS256"}), "m2m_token") == "token-invalid-algorithm"
    assert _reason(auth, issuer.mint_m2m(jti=5), "m2m_token") == "token-invalid-claims"
    tampered = issuer.mint_m2m()
    assert _reason(
        auth, tampered[:-4] + ("AAAA" if not tampered.endswith("AAAA") else "BBBB"), "m2m_token"
    ) in {
        "token-invalid-signature",
        "token-malformed",
    }


async def test_averify_gives_the_same_answers(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    credential = await auth.averify(issuer.mint_oauth(scopes=["a"]), accepts_token="oauth_token")
    assert credential.token_type == "oauth_token"
    with pytest.raises(AuthError) as info:
        await auth.averify(issuer.mint_m2m())
    assert info.value.reason == "token-type-not-accepted"


@pytest.mark.parametrize("bad", ["session", "all", [], ["any"], [5], b"api_key", {"api_key": 1}, None])
def test_an_unknown_accepts_token_is_a_configuration_error(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], bad: Any
) -> None:
    with pytest.raises(ConfigurationError, match="accepts_token"):
        make_auth().verify(issuer.mint(), accepts_token=bad)


def test_session_and_machine_credential_differ_by_token_type(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    session = auth.verify(issuer.mint())
    assert session.token_type == "session_token"
    credential = auth.verify(issuer.mint_m2m(), accepts_token="any")
    assert credential.token_type == "m2m_token"
    with pytest.raises(AttributeError):
        credential.subject = "mch_other"  # type: ignore[misc]
    assert "mt_" in repr(credential)
    assert "." not in repr(credential).split("id=")[1][:40]
