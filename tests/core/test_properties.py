"""Property tests: whatever is thrown at verify/averify, only a 401 AuthError escapes, and both agree.

The well-formed-but-wrong tokens are checked against an independent oracle
written from design section 4 (not from the code): a token is accepted if and
only if the oracle says every rule holds.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from clerkguard import AuthError, ClerkAuth, Session
from clerkguard.testing import LocalIssuer

from .support import T0, FrozenClock, sign_raw

REASONS = frozenset(
    {
        "token-missing",
        "token-too-large",
        "token-malformed",
        "token-invalid-algorithm",
        "token-invalid-header",
        "token-type-mismatch",
        "token-type-not-accepted",  # typ at+jwt without cat: an OAuth access token, not a session
        "jwk-kid-mismatch",
        "token-invalid-signature",
        "token-invalid-subject",
        "token-invalid-claims",
        "token-expired",
        "token-not-active-yet",
        "token-iat-in-the-future",
        "token-invalid-issuer",
        "token-invalid-authorized-party",
        "session-pending",
    }
)
SKEW = 5
AZP = "https://app.example.com"
CATEGORIES = ("cl_B7d4PD111AAA", "cl_I7d4PD111III")

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@dataclass
class Harness:
    """One warm ClerkAuth, its issuer, a stranger's key and an event loop for averify."""

    issuer: LocalIssuer
    auth: ClerkAuth
    stranger: RSAKey
    loop: asyncio.AbstractEventLoop

    def outcome(self, token: Any) -> tuple[str, str]:
        """Judge ``token`` through verify and averify: both must agree; only 401s may escape."""
        results = []
        for mode in ("verify", "averify"):
            outcome: Session | AuthError
            try:
                if mode == "verify":
                    outcome = self.auth.verify(token)
                else:
                    outcome = self.loop.run_until_complete(self.auth.averify(token))
            except AuthError as error:  # anything else escapes and fails the test
                outcome = error
            if isinstance(outcome, AuthError):
                assert outcome.status == 401, (mode, outcome.status, outcome.reason)
                assert outcome.reason in REASONS, outcome.reason
                results.append(("rejected", outcome.reason))
            else:
                assert isinstance(outcome, Session)
                results.append(("accepted", outcome.user_id))
        assert results[0] == results[1], results
        return results[0]


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with LocalIssuer(clock=lambda: T0) as issuer:
        auth = issuer.auth(clock=FrozenClock(T0), authorized_parties=[AZP])
        loop = asyncio.new_event_loop()
        harness = Harness(issuer, auth, RSAKey.generate_key(2048, private=True), loop)
        # Warm the key cache: from here on an outage-like 503 must never appear.
        assert harness.outcome(issuer.mint(azp=AZP))[0] == "accepted"
        yield harness
        loop.run_until_complete(auth.aclose())
        loop.close()


# -- arbitrary input --------------------------------------------------------------------------


@PROPERTY
@given(text=st.text(max_size=400))
def test_random_text(harness: Harness, text: str) -> None:
    assert harness.outcome(text)[0] == "rejected"


B64URL = string.ascii_letters + string.digits + "-_"


@PROPERTY
@given(
    parts=st.lists(st.text(alphabet=B64URL + "=+/ \t\n", max_size=80), min_size=1, max_size=5),
)
def test_random_ascii_dotted_strings(harness: Harness, parts: list[str]) -> None:
    assert harness.outcome(".".join(parts))[0] == "rejected"


@PROPERTY
@given(
    value=st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.binary(max_size=50),
        st.lists(st.text(max_size=10), max_size=3),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    )
)
def test_non_strings(harness: Harness, value: Any) -> None:
    assert harness.outcome(value)[0] == "rejected"


@PROPERTY
@given(data=st.data())
def test_mutated_real_tokens(harness: Harness, data: st.DataObject) -> None:
    # One character of a valid token changed: only an identical token may pass.
    token = harness.issuer.mint(azp=AZP)
    index = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(st.sampled_from(B64URL + ".=+/ é"))
    mutated = token[:index] + char + token[index + 1 :]
    verdict, _ = harness.outcome(mutated)
    if mutated != token:
        assert verdict == "rejected"


# -- well-formed but wrong tokens, against an oracle ---------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)

DELETE = object()


def _numbers(now: int) -> st.SearchStrategy[Any]:
    near = st.integers(now - 3 * SKEW, now + 3 * SKEW)
    return near | near.map(float) | st.floats(now - 20, now + 20, allow_nan=False) | JSON


def _claim_values(issuer: LocalIssuer) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "sub": st.sampled_from(["", "user_other", 5, None]) | JSON,
        "sid": st.sampled_from(["", "sess_other"]) | JSON,
        "exp": _numbers(T0),
        "iat": _numbers(T0),
        "nbf": _numbers(T0),
        "iss": st.sampled_from([issuer.issuer + "/", issuer.issuer.upper(), [issuer.issuer]]) | JSON,
        "azp": st.sampled_from(["https://evil.example", [AZP], AZP + "/"]) | JSON,
        "sts": st.sampled_from(["pending", "active", "ended"]) | JSON,
        "v": st.sampled_from([1, 2, "2"]) | JSON,
        "o": JSON,
        "fea": JSON,
        "fva": JSON,
        "org_id": JSON,
        "act": JSON,
    }


def _header_values(issuer: LocalIssuer) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "alg": st.sampled_from(["none", "HS256", "RS512", "rs256", None]) | JSON,
        "kid": st.sampled_from(["ins_unknown", "", issuer.kid + " "]) | JSON,
        "typ": st.sampled_from(["JWT", "jwt", "at+jwt"]) | JSON,
        "cat": st.sampled_from([*CATEGORIES, "cl_T7d4PD111TTT"]) | JSON,
        "crit": st.sampled_from([["exp"], []]) | JSON,
        "jwk": JSON,
    }


@st.composite
def wrong_tokens(draw: st.DrawFn, harness: Harness) -> tuple[str, dict[str, Any], dict[str, Any], bool]:
    """A valid token with a few header members and claims changed or removed, maybe signed by a stranger."""
    issuer = harness.issuer
    claims: dict[str, Any] = issuer.claims(issued_at=T0, azp=AZP)
    header: dict[str, Any] = {"alg": "RS256", "cat": CATEGORIES[0], "kid": issuer.kid, "typ": "JWT"}
    # Header damage stops verification early: apply it to only half the tokens so the claims get exercised.
    targets = [(claims, _claim_values(issuer))]
    if draw(st.booleans()):
        targets.append((header, _header_values(issuer)))
    for target, values in targets:
        for name in draw(st.sets(st.sampled_from(sorted(values)), max_size=3)):
            value = draw(st.just(DELETE) | values[name])
            if value is DELETE:
                target.pop(name, None)
            else:
                target[name] = value
    by_issuer = draw(st.integers(0, 4)) != 0
    token = sign_raw(header, claims, issuer.key if by_issuer else harness.stranger)
    return token, header, claims, by_issuer


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _json_within_bounds(value: Any, level: int = 1) -> bool:
    """Design section 4's JSON bounds: integers of at most 32 characters, at most 16 nested containers."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return len(str(value)) <= 32
    if isinstance(value, dict):
        return level <= 16 and all(_json_within_bounds(v, level + 1) for v in value.values())
    if isinstance(value, list):
        return level <= 16 and all(_json_within_bounds(v, level + 1) for v in value)
    return True


def oracle(
    token: str, header: dict[str, Any], claims: dict[str, Any], by_issuer: bool, issuer: LocalIssuer
) -> bool:
    """Should this (well-formed, RS256-shaped) token be accepted?  Written from the design, not the code."""
    now = T0
    if len(token) > 8192 or not (_json_within_bounds(header) and _json_within_bounds(claims)):
        return False
    if header.get("alg") != "RS256" or "crit" in header:
        return False
    if "typ" in header and header["typ"] != "JWT":
        return False
    if "cat" in header and not (isinstance(header["cat"], str) and header["cat"] in CATEGORIES):
        return False
    if header.get("kid") != issuer.kid or not by_issuer:
        return False
    sub, sid = claims.get("sub"), claims.get("sid")
    if not (isinstance(sub, str) and sub) or not isinstance(sid, str):
        return False
    exp, iat = claims.get("exp"), claims.get("iat")
    if not (_is_number(exp) and _is_number(iat)) or ("nbf" in claims and not _is_number(claims["nbf"])):
        return False
    if exp <= now - SKEW or iat > now + SKEW or ("nbf" in claims and claims["nbf"] > now + SKEW):
        return False
    if not (isinstance(claims.get("iss"), str) and claims["iss"] == issuer.issuer):
        return False
    if not (isinstance(claims.get("azp"), str) and claims["azp"] == AZP):
        return False
    return claims.get("sts") != "pending"


@PROPERTY
@given(data=st.data())
def test_wrong_tokens_match_the_oracle(harness: Harness, data: st.DataObject) -> None:
    token, header, claims, by_issuer = data.draw(wrong_tokens(harness))
    verdict, detail = harness.outcome(token)
    event(verdict if verdict == "accepted" else detail)  # shows the mix with --hypothesis-show-statistics
    expected = oracle(token, header, claims, by_issuer, harness.issuer)
    assert (verdict == "accepted") == expected, (verdict, detail, header, json.dumps(claims, default=str))
    if verdict == "accepted":
        assert detail == claims["sub"]
