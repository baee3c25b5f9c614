"""A real Clerk session token (clerk/javascript test fixtures) verifies exactly as Clerk issued it.

The token was signed by a real Clerk development instance; its JWKS is served
both in memory (``httpx.MockTransport``) and over real loopback HTTP. The
clock is frozen at the fixture's ``verify_at``; the token's own lifetime is
``[iat, exp]`` = 1666648250..1666648310 with ``nbf`` 1666648240.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from clerkguard import ClerkAuth
from clerkguard.testing import LocalIssuer

from .support import MODES, Verifier

Fixture = dict[str, Any]
MakeAuth = Callable[..., ClerkAuth]


@pytest.fixture(scope="module")
def jwks_server(clerk_js_fixture: Fixture) -> Iterator[LocalIssuer]:
    """A loopback HTTP server publishing the real instance's JWKS (and nothing of its own)."""
    with LocalIssuer() as server:
        server.jwks_override = clerk_js_fixture["jwks"]
        yield server


@pytest.fixture(params=["mock-transport", "loopback-http"])
def transport_kind(request: pytest.FixtureRequest) -> str:
    """How the JWKS reaches ClerkAuth: in memory, or over a real socket."""
    kind: str = request.param
    return kind


@pytest.fixture
def make_auth(clerk_js_fixture: Fixture, jwks_server: LocalIssuer, transport_kind: str) -> Iterator[MakeAuth]:
    """``make_auth(at=..., **options)``: a ClerkAuth for the real instance, judging at ``at``."""
    made: list[ClerkAuth] = []
    issuer = clerk_js_fixture["expected_claims"]["iss"]

    def make(at: float | None = None, **options: Any) -> ClerkAuth:
        at = clerk_js_fixture["verify_at"] if at is None else at
        options.setdefault("issuer", issuer)
        options.setdefault("clock", lambda: at)
        options.setdefault("env", {})
        if transport_kind == "mock-transport":
            jwks = clerk_js_fixture["jwks"]
            options.setdefault("transport", httpx.MockTransport(lambda _: httpx.Response(200, json=jwks)))
            options.setdefault("jwks_uri", f"{issuer}/.well-known/jwks.json")
        else:
            options.setdefault("jwks_uri", jwks_server.jwks_uri)
        auth = ClerkAuth(**options)
        made.append(auth)
        return auth

    yield make
    for auth in made:
        auth.close()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """``verify`` or ``averify``."""
    param: str = request.param
    return param


def _decode(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


async def test_real_token_verifies_with_exactly_its_claims(
    clerk_js_fixture: Fixture, make_auth: MakeAuth, mode: str
) -> None:
    session = await Verifier(make_auth(), mode)(clerk_js_fixture["session_token"])
    expected = clerk_js_fixture["expected_claims"]
    assert dict(session.claims) == expected
    assert session.user_id == expected["sub"] == "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"
    assert session.session_id == expected["sid"]
    assert session.issuer == expected["iss"]
    assert session.authorized_party == expected["azp"]
    assert (session.issued_at, session.expires_at) == (expected["iat"], expected["exp"])
    # A v1 token without an organization, status or factor ages.
    assert session.version == 1
    assert session.org_id is session.org_role is session.session_status is None
    assert session.org_permissions == ()
    assert session.factor_verification_age is None


async def test_real_token_costs_one_jwks_request(
    clerk_js_fixture: Fixture, jwks_server: LocalIssuer, make_auth: MakeAuth, mode: str, transport_kind: str
) -> None:
    jwks_server.reset_count()
    verifier = Verifier(make_auth(), mode)
    for _ in range(3):
        assert (await verifier(clerk_js_fixture["session_token"])).user_id
    assert verifier.auth.stats.fetches == 1
    assert jwks_server.request_count == (1 if transport_kind == "loopback-http" else 0)


def test_fixture_header_is_the_documented_one(clerk_js_fixture: Fixture) -> None:
    header = _decode(clerk_js_fixture["session_token"].split(".")[0])
    assert header == clerk_js_fixture["expected_header"]
    assert "cat" not in header  # an older token: no category header, still a session token


def test_real_token_with_the_pem_of_its_key_needs_no_request(
    clerk_js_fixture: Fixture, jwks_server: LocalIssuer
) -> None:
    jwks_server.reset_count()
    pem = RSAKey.import_key(clerk_js_fixture["jwks"]["keys"][0]).as_pem(private=False).decode()
    auth = ClerkAuth(
        jwt_key=pem,
        issuer=clerk_js_fixture["expected_claims"]["iss"],
        clock=lambda: clerk_js_fixture["verify_at"],
        env={},
    )
    assert dict(auth.verify(clerk_js_fixture["session_token"]).claims) == clerk_js_fixture["expected_claims"]
    assert jwks_server.request_count == 0


def test_real_token_from_its_publishable_key(clerk_js_fixture: Fixture) -> None:
    # The Frontend API host derives both the issuer and the JWKS URL, as in Clerk's SDKs.
    host = clerk_js_fixture["expected_claims"]["iss"].removeprefix("https://")
    publishable_key = "pk_test_" + base64.b64encode(f"{host}$".encode()).decode().rstrip("=")
    seen: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=clerk_js_fixture["jwks"])

    auth = ClerkAuth(
        publishable_key=publishable_key,
        clock=lambda: clerk_js_fixture["verify_at"],
        transport=httpx.MockTransport(serve),
        env={},
    )
    assert auth.verify(clerk_js_fixture["session_token"]).user_id == "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"
    assert seen == [f"https://{host}/.well-known/jwks.json"]


@pytest.mark.parametrize("variant", ["tampered_payload_token", "malformed_payload_token"])
async def test_published_tampered_variants_are_rejected(
    clerk_js_fixture: Fixture, make_auth: MakeAuth, mode: str, variant: str
) -> None:
    assert await Verifier(make_auth(), mode).reason(clerk_js_fixture[variant]) == "token-invalid-signature"


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, p, s: (h, p, _flip(s, 0)), id="signature-first-char"),
        pytest.param(lambda h, p, s: (h, p, _flip(s, 200)), id="signature-middle"),
        pytest.param(lambda h, p, s: (h, p, _b64(_unb64(s)[::-1])), id="signature-bytes-reversed"),
        pytest.param(lambda h, p, s: (h, p, s[:-4]), id="signature-truncated"),
        pytest.param(lambda h, p, s: (h, _flip(p, 30), s), id="payload-bit"),
        pytest.param(
            lambda h, p, s: (
                base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"ins_2GIoQhbUpy0hX7B2cVkuTMinXoD"}')
                .decode()
                .rstrip("="),
                p,
                s,
            ),
            id="header-without-typ",
        ),
    ],
)
async def test_any_change_to_the_real_token_breaks_its_signature(
    clerk_js_fixture: Fixture, make_auth: MakeAuth, mode: str, tamper: Callable[..., tuple[str, str, str]]
) -> None:
    parts = tamper(*clerk_js_fixture["session_token"].split("."))
    token = ".".join(parts)
    assert token != clerk_js_fixture["session_token"]
    assert await Verifier(make_auth(), mode).reason(token) == "token-invalid-signature"


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (1666648234, "token-not-active-yet"),  # nbf - skew - 1
        (1666648244, "token-iat-in-the-future"),  # iat - skew - 1 (nbf already passed)
        (1666648245, None),  # iat - skew: first accepted instant
        (1666648260, None),  # verify_at
        (1666648314, None),  # exp + skew - 1: last accepted instant
        (1666648315, "token-expired"),  # exp + skew
        (1766648315, "token-expired"),
    ],
)
async def test_real_token_is_only_valid_inside_its_lifetime(
    clerk_js_fixture: Fixture, make_auth: MakeAuth, mode: str, at: int, reason: str | None
) -> None:
    verifier = Verifier(make_auth(at=at), mode)
    token = clerk_js_fixture["session_token"]
    if reason is None:
        assert (await verifier(token)).user_id == "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"
    else:
        assert await verifier.reason(token) == reason


async def test_real_token_on_the_real_clock_has_long_expired(
    clerk_js_fixture: Fixture, make_auth: MakeAuth, mode: str
) -> None:
    auth = make_auth(clock=time.time)
    assert await Verifier(auth, mode).reason(clerk_js_fixture["session_token"]) == "token-expired"


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("issuer", "https://clerk.other.lcl.dev", "token-invalid-issuer"),
        ("authorized_parties", ["https://accounts.other.lcl.dev"], "token-invalid-authorized-party"),
    ],
)
async def test_real_token_is_held_to_the_configured_instance(
    clerk_js_fixture: Fixture, make_auth: MakeAuth, mode: str, option: str, value: Any, reason: str
) -> None:
    verifier = Verifier(make_auth(**{option: value}), mode)
    assert await verifier.reason(clerk_js_fixture["session_token"]) == reason


async def test_real_token_with_its_authorized_party_listed(
    clerk_js_fixture: Fixture, make_auth: MakeAuth, mode: str
) -> None:
    azp = clerk_js_fixture["expected_claims"]["azp"]
    verifier = Verifier(make_auth(authorized_parties=[azp, "https://other.example"]), mode)
    assert (await verifier(clerk_js_fixture["session_token"])).authorized_party == azp
