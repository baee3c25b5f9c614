"""Design section 4, rule by rule: each with a passing and a failing case, through verify and averify.

Every token here is judged by a fresh ClerkAuth that fetches keys from a real
loopback JWKS server (``clerk_issuer``); every failing case is correctly
signed unless the rule under test is the signature itself, so each token
reaches the rule it is meant to hit.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from clerkguard.testing import MISSING, LocalIssuer, b64url

from .support import (
    FrozenClock,
    Verifier,
    header_for,
    hs256_with_public_key,
    mint_of_length,
    payload_bytes,
    segment,
    sign_raw,
    sign_segments,
)

Mint = Callable[..., str]
MakeVerifier = Callable[..., Verifier]


@pytest.fixture(scope="module")
def attacker() -> Iterator[LocalIssuer]:
    """Someone else's key pair, served from their own loopback JWKS server."""
    with LocalIssuer() as issuer:
        yield issuer


# -- token text: size, ASCII, shape -------------------------------------------------


async def test_token_of_exactly_8192_characters_verifies(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    token = mint_of_length(clerk_issuer, 8192, issued_at=clock.now)
    assert (await verify(token)).user_id == "user_2abcdefghijklmnopqrstuvwxyz"


async def test_token_of_8193_characters_is_too_large(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    token = mint_of_length(clerk_issuer, 8193, issued_at=clock.now)
    assert await verify.reason(token) == "token-too-large"


async def test_megabyte_token_is_too_large_without_a_key_fetch(
    verify: Verifier, clerk_issuer: LocalIssuer
) -> None:
    assert await verify.reason("a" * 1_000_000) == "token-too-large"
    assert clerk_issuer.request_count == 0


@pytest.mark.parametrize("intruder", ["é", "\u0430", "\uff21", "\x00", "\u200b"])
async def test_non_ascii_character_is_malformed(verify: Verifier, mint: Mint, intruder: str) -> None:
    token = mint()
    cut = token.index(".") + 5
    assert await verify.reason(token[:cut] + intruder + token[cut + 1 :]) == "token-malformed"


@pytest.mark.parametrize(
    "reshape",
    [
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="two-segments"),
        pytest.param(lambda t: t + ".AAAA", id="four-segments"),
        pytest.param(lambda t: t + ".", id="trailing-dot"),
        pytest.param(lambda t: "." + t, id="leading-dot"),
        pytest.param(lambda t: t.replace(".", "..", 1), id="empty-segment"),
        pytest.param(lambda t: t.split(".")[0] + ".." + t.split(".")[2], id="empty-payload"),
        pytest.param(lambda t: t.rsplit(".", 1)[0] + ".", id="empty-signature"),
        pytest.param(lambda t: "...", id="only-dots"),
        pytest.param(lambda t: "not-a-token", id="one-segment"),
    ],
)
async def test_anything_but_three_segments_is_malformed(
    verify: Verifier, mint: Mint, reshape: Callable[[str], str]
) -> None:
    assert await verify.reason(reshape(mint())) == "token-malformed"


@pytest.mark.parametrize("where", [0, 1, 2], ids=["header", "payload", "signature"])
@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda s: s + "=", id="padding"),
        pytest.param(lambda s: s + "==", id="double-padding"),
        pytest.param(lambda s: s[:3] + "+" + s[4:], id="plus"),
        pytest.param(lambda s: s[:3] + "/" + s[4:], id="slash"),
        pytest.param(lambda s: s[:3] + " " + s[3:], id="space"),
        pytest.param(lambda s: s + "\n", id="newline"),
        pytest.param(lambda s: "\t" + s, id="tab"),
    ],
)
async def test_non_base64url_characters_are_malformed(
    verify: Verifier, mint: Mint, where: int, damage: Callable[[str], str]
) -> None:
    parts = mint().split(".")
    parts[where] = damage(parts[where])
    assert await verify.reason(".".join(parts)) == "token-malformed"


async def test_surrounding_whitespace_is_malformed(verify: Verifier, mint: Mint) -> None:
    token = mint()
    assert await verify.reason(f" {token}") == "token-malformed"
    assert await verify.reason(f"{token}\r\n") == "token-malformed"


async def test_header_segment_of_impossible_length_is_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, mint: Mint
) -> None:
    header = segment(header_for(clerk_issuer))
    # No byte string encodes to 4k+1 base64 characters; extend a real header to that length.
    header += "A" * ((1 - len(header)) % 4)
    assert len(header) % 4 == 1
    _, payload, signature = mint().split(".")
    assert await verify.reason(f"{header}.{payload}.{signature}") == "token-malformed"


async def test_signed_payload_segment_of_impossible_length_is_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, mint: Mint
) -> None:
    # The signature covers the segment text, so it verifies; decoding must still refuse it.
    payload = mint().split(".")[1]
    payload += "A" * ((1 - len(payload)) % 4)
    assert len(payload) % 4 == 1
    token = sign_segments(segment(header_for(clerk_issuer)), payload, clerk_issuer.key)
    assert await verify.reason(token) == "token-malformed"


async def test_signature_of_impossible_length_is_malformed(verify: Verifier, mint: Mint) -> None:
    token = mint()
    token += "A" * ((1 - len(token.rsplit(".", 1)[1])) % 4)
    assert await verify.reason(token) == "token-malformed"


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respell_last_char(segment: str) -> str:
    """The same bytes, spelt with non-zero unused bits in the last character."""
    spare_bits = {2: 4, 3: 2}[len(segment) % 4]
    value = B64URL.index(segment[-1])
    return segment[:-1] + B64URL[value | (1 << spare_bits) - 1]


@pytest.mark.parametrize("where", [0, 1, 2], ids=["header", "payload", "signature"])
async def test_non_canonical_base64url_is_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock, where: int
) -> None:
    # Pad the header and payload so that no segment is a multiple of 4 long (no spare bits then).
    pad = ""
    while True:
        head = segment(header_for(clerk_issuer, pad=pad))
        body = segment(clerk_issuer.claims(issued_at=clock.now, pad=pad))
        if len(head) % 4 and len(body) % 4:
            break
        pad += "x"
    parts = sign_segments(head, body, clerk_issuer.key).split(".")
    assert (await verify(".".join(parts))).user_id
    assert len(parts[2]) % 4  # RS256-2048 signatures are 342 characters: 4 spare bits
    respelt = list(parts)
    respelt[where] = _respell_last_char(parts[where])
    if where != 2:  # a re-spelt header or payload is re-signed, so only the spelling is wrong
        respelt = sign_segments(respelt[0], respelt[1], clerk_issuer.key).split(".")
    assert await verify.reason(".".join(respelt)) == "token-malformed"


# -- header --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alg",
    ["none", "None", "HS256", "RS512", "PS256", "ES256", "rs256", "", None, ["RS256"], MISSING],
    ids=repr,
)
async def test_only_rs256_is_accepted(verify: Verifier, mint: Mint, alg: Any) -> None:
    assert await verify.reason(mint(header={"alg": alg})) == "token-invalid-algorithm"


async def test_unsigned_alg_none_token_is_rejected(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    head = segment(header_for(clerk_issuer, alg="none"))
    body = segment(clerk_issuer.claims(issued_at=clock.now))
    assert await verify.reason(f"{head}.{body}.") == "token-malformed"
    assert await verify.reason(f"{head}.{body}.AAAA") == "token-invalid-algorithm"


async def test_hs256_keyed_with_the_public_key_is_rejected(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    token = hs256_with_public_key(clerk_issuer, clerk_issuer.claims(issued_at=clock.now))
    assert await verify.reason(token) == "token-invalid-algorithm"


@pytest.mark.parametrize("kid", [MISSING, None, 123, ["kid"], {"k": 1}, True, ""], ids=repr)
async def test_kid_must_be_a_non_empty_string(verify: Verifier, mint: Mint, kid: Any) -> None:
    assert await verify.reason(mint(header={"kid": kid})) == "token-invalid-header"


async def test_unknown_kid_is_rejected(verify: Verifier, mint: Mint) -> None:
    assert await verify.reason(mint(header={"kid": "ins_someoneelse"})) == "jwk-kid-mismatch"


@pytest.mark.parametrize("typ", [MISSING, "JWT"], ids=repr)
async def test_typ_absent_or_jwt_is_accepted(verify: Verifier, mint: Mint, typ: Any) -> None:
    assert (await verify(mint(header={"typ": typ}))).user_id


@pytest.mark.parametrize("typ", ["jwt", "AT+JWT", "JWS", "JOSE", "", None, 1, ["JWT"]], ids=repr)
async def test_other_typ_is_rejected(verify: Verifier, mint: Mint, typ: Any) -> None:
    assert await verify.reason(mint(header={"typ": typ})) == "token-invalid-header"


@pytest.mark.parametrize("cat", [MISSING, "cl_B7d4PD111AAA", "cl_I7d4PD111III"], ids=repr)
async def test_session_categories_are_accepted(verify: Verifier, mint: Mint, cat: Any) -> None:
    assert (await verify(mint(header={"cat": cat}))).user_id


@pytest.mark.parametrize(
    "cat",
    ["cl_T7d4PD111TTT", "cl_M7d4PD111MMM", "cl_b7d4pd111aaa", "", None, 7, ["cl_B7d4PD111AAA"]],
    ids=repr,
)
async def test_other_categories_are_a_type_mismatch(verify: Verifier, mint: Mint, cat: Any) -> None:
    assert await verify.reason(mint(header={"cat": cat})) == "token-type-mismatch"


@pytest.mark.parametrize("crit", [["exp"], [], ["cat"], "b64", None], ids=repr)
async def test_any_crit_header_is_rejected(verify: Verifier, mint: Mint, crit: Any) -> None:
    assert await verify.reason(mint(header={"crit": crit})) == "token-invalid-header"


async def test_unknown_headers_are_ignored(verify: Verifier, mint: Mint) -> None:
    token = mint(header={"x-custom": {"nested": [1, 2]}, "b64": True, "cty": "JWT"})
    assert (await verify(token)).user_id


def _self_signed_cert(issuer: LocalIssuer) -> str:
    key = issuer.key.private_key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


@pytest.mark.parametrize("kid_of", ["victim", "attacker"])
@pytest.mark.parametrize("carrier", ["jwk", "jku", "x5u", "x5c"])
async def test_keys_named_in_the_header_are_never_used(
    verify: Verifier,
    clerk_issuer: LocalIssuer,
    attacker: LocalIssuer,
    clock: FrozenClock,
    carrier: str,
    kid_of: str,
) -> None:
    attacker.reset_count()
    pointers: dict[str, Any] = {
        "jwk": {**attacker.jwks()["keys"][0]},
        "jku": attacker.jwks_uri,
        "x5u": attacker.jwks_uri,
        "x5c": [_self_signed_cert(attacker)],
    }
    kid = clerk_issuer.kid if kid_of == "victim" else attacker.kid
    claims = clerk_issuer.claims(issued_at=clock.now, user_id="user_admin")
    token = attacker.mint(header={"kid": kid, carrier: pointers[carrier]}, claims=claims)
    expected = "token-invalid-signature" if kid_of == "victim" else "jwk-kid-mismatch"
    assert await verify.reason(token) == expected
    assert attacker.request_count == 0


async def test_same_header_with_the_real_key_still_verifies(
    verify: Verifier, mint: Mint, attacker: LocalIssuer
) -> None:
    # The carrier headers are ignored, not forbidden: the configured key decides.
    attacker.reset_count()
    token = mint(header={"jku": attacker.jwks_uri, "jwk": attacker.jwks()["keys"][0]})
    assert (await verify(token)).user_id
    assert attacker.request_count == 0


# -- strict JSON ------------------------------------------------------------------------


def _claims(issuer: LocalIssuer, clock: FrozenClock, **changes: Any) -> dict[str, Any]:
    return issuer.claims(issued_at=clock.now, **changes)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig"])
async def test_payload_not_in_plain_utf8_is_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock, encoding: str
) -> None:
    raw = payload_bytes(_claims(clerk_issuer, clock)).decode().encode(encoding)
    token = sign_raw(header_for(clerk_issuer), raw, clerk_issuer.key)
    assert await verify.reason(token) == "token-malformed"


async def test_header_not_in_plain_utf8_is_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    header = payload_bytes(header_for(clerk_issuer)).decode().encode("utf-16")
    token = sign_raw(header, _claims(clerk_issuer, clock), clerk_issuer.key)
    assert await verify.reason(token) == "token-malformed"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'"sub":"user_evil"', id="second-sub"),
        pytest.param(b'"exp":99999999999', id="second-exp"),
        pytest.param(b'"iss":"https://evil.example"', id="second-iss"),
    ],
)
async def test_duplicate_member_names_are_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock, raw: bytes
) -> None:
    base = payload_bytes(_claims(clerk_issuer, clock))
    token = sign_raw(header_for(clerk_issuer), base[:-1] + b"," + raw + b"}", clerk_issuer.key)
    assert await verify.reason(token) == "token-malformed"


async def test_duplicate_member_names_in_nested_objects_are_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    raw = payload_bytes(_claims(clerk_issuer, clock), o='{"id":"org_a","rol":"member","rol":"admin"}')
    assert await verify.reason(sign_raw(header_for(clerk_issuer), raw, clerk_issuer.key)) == "token-malformed"


async def test_duplicate_header_member_names_are_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    header = b'{"alg":"none","kid":"%s","alg":"RS256"}' % clerk_issuer.kid.encode()
    token = sign_raw(header, _claims(clerk_issuer, clock), clerk_issuer.key)
    assert await verify.reason(token) == "token-malformed"


@pytest.mark.parametrize(
    "number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 40, "1" * 5000]
)
async def test_non_finite_or_oversized_numbers_are_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock, number: str
) -> None:
    claims = _claims(clerk_issuer, clock)
    del claims["exp"]
    token = sign_raw(header_for(clerk_issuer), payload_bytes(claims, exp=number), clerk_issuer.key)
    assert await verify.reason(token) == "token-malformed"


async def test_large_but_bounded_numbers_are_accepted(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    raw = payload_bytes(_claims(clerk_issuer, clock), big="12345678901234567890", tiny="1e-300")
    session = await verify(sign_raw(header_for(clerk_issuer), raw, clerk_issuer.key))
    assert session.claims["big"] == 12345678901234567890


@pytest.mark.parametrize(
    "member",
    [
        pytest.param({"name": '"\\ud800"'}, id="lone-high-surrogate"),
        pytest.param({"name": '"\\udfff"'}, id="lone-low-surrogate"),
        pytest.param({"name": '"x\\ud800y"'}, id="surrogate-inside"),
        pytest.param({"name": '["\\ude00\\ud83d"]'}, id="reversed-pair-in-list"),
        pytest.param({"name": '{"\\ud800":1}'}, id="surrogate-in-a-member-name"),
    ],
)
async def test_lone_surrogate_escapes_are_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock, member: dict[str, str]
) -> None:
    raw = payload_bytes(_claims(clerk_issuer, clock), **member)
    assert await verify.reason(sign_raw(header_for(clerk_issuer), raw, clerk_issuer.key)) == "token-malformed"


async def test_escaped_surrogate_pair_is_accepted(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    raw = payload_bytes(_claims(clerk_issuer, clock), name='"smile \\ud83d\\ude00"')
    session = await verify(sign_raw(header_for(clerk_issuer), raw, clerk_issuer.key))
    assert session.claims["name"] == "smile \U0001f600"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xff", id="invalid-byte"),
        pytest.param(b"\xc0\xaf", id="overlong"),
        pytest.param(b"\xed\xa0\x80", id="encoded-surrogate"),
        pytest.param(b"\xe2\x82", id="truncated"),
    ],
)
async def test_invalid_utf8_is_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock, raw: bytes
) -> None:
    base = payload_bytes(_claims(clerk_issuer, clock), name='"PLACE"')
    token = sign_raw(header_for(clerk_issuer), base.replace(b"PLACE", raw), clerk_issuer.key)
    assert await verify.reason(token) == "token-malformed"


def _nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


@pytest.mark.parametrize(
    "note", ["", "[[[[[[[[[[[[[[[[[[[[", "{{{{{{{{{{{{{{{{{{{{"], ids=["plain", "brackets", "braces"]
)
async def test_sixteen_levels_of_nesting_are_accepted(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock, note: str
) -> None:
    # The payload object is level 1, so a claim may nest 15 arrays; brackets inside
    # strings must not change the verdict.
    raw = payload_bytes(_claims(clerk_issuer, clock, note=note), deep=_nested(15))
    session = await verify(sign_raw(header_for(clerk_issuer), raw, clerk_issuer.key))
    assert session.claims["note"] == note


@pytest.mark.parametrize("depth", [16, 17, 40, 2500])
@pytest.mark.parametrize("leaf", ["1", "[]", "{}"])
async def test_deeper_nesting_is_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock, depth: int, leaf: str
) -> None:
    # 16 arrays inside the payload object put the innermost one at level 17.
    raw = payload_bytes(_claims(clerk_issuer, clock), deep=_nested(depth, leaf))
    assert await verify.reason(sign_raw(header_for(clerk_issuer), raw, clerk_issuer.key)) == "token-malformed"


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'"claims"', b"1", b"null", b"true", b"", b" ", b"{", b'{"sub":"u"} {}', b'{"sub":"u"}x'],
    ids=repr,
)
async def test_payload_must_be_exactly_one_object(
    verify: Verifier, clerk_issuer: LocalIssuer, raw: bytes
) -> None:
    token = sign_raw(header_for(clerk_issuer), raw, clerk_issuer.key)
    assert await verify.reason(token) == "token-malformed"


async def test_raw_control_character_in_a_string_is_malformed(
    verify: Verifier, clerk_issuer: LocalIssuer, clock: FrozenClock
) -> None:
    raw = payload_bytes(_claims(clerk_issuer, clock), name='"a\nb"')
    assert await verify.reason(sign_raw(header_for(clerk_issuer), raw, clerk_issuer.key)) == "token-malformed"


async def test_header_must_be_an_object(verify: Verifier, clerk_issuer: LocalIssuer, mint: Mint) -> None:
    _, payload, signature = mint().split(".")
    for raw in (b"[]", b'"RS256"', b"null", b"\xff"):
        assert await verify.reason(f"{b64url(raw)}.{payload}.{signature}") == "token-malformed"


# -- signature before claims ---------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": 1, "iat": 0}, id="expired"),
        pytest.param({"nbf": 9_999_999_999}, id="not-yet-valid"),
        pytest.param({"iss": "https://evil.example"}, id="other-issuer"),
        pytest.param({"sub": MISSING}, id="no-subject"),
        pytest.param({"sts": "pending"}, id="pending"),
    ],
)
async def test_forged_token_reports_the_signature_not_its_claims(
    verify: Verifier, clerk_issuer: LocalIssuer, attacker: LocalIssuer, clock: FrozenClock, claims: Any
) -> None:
    forged = clerk_issuer.mint(key=attacker.key, issued_at=clock.now, **claims)
    assert await verify.reason(forged) == "token-invalid-signature"


async def test_forged_token_with_a_malformed_payload_reports_the_signature(
    verify: Verifier, clerk_issuer: LocalIssuer, attacker: LocalIssuer
) -> None:
    forged = sign_raw(header_for(clerk_issuer), b'{"sub":NaN,"sub":1', attacker.key)
    assert await verify.reason(forged) == "token-invalid-signature"


async def test_tampered_signature_bits_are_rejected(verify: Verifier, mint: Mint) -> None:
    head, body, sig = mint().split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert await verify.reason(f"{head}.{body}.{flipped}") == "token-invalid-signature"
    short = b64url(base64.urlsafe_b64decode(sig + "==")[:-6])  # six bytes short, spelt canonically
    assert await verify.reason(f"{head}.{body}.{short}") == "token-invalid-signature"
    assert await verify.reason(f"{head}.{body}.{body}") == "token-invalid-signature"


async def test_payload_swapped_between_two_valid_tokens_is_rejected(verify: Verifier, mint: Mint) -> None:
    first = mint(user_id="user_alice").split(".")
    second = mint(user_id="user_mallory").split(".")
    assert await verify.reason(f"{first[0]}.{second[1]}.{first[2]}") == "token-invalid-signature"


# -- claims -----------------------------------------------------------------------------


@pytest.mark.parametrize("sub", [MISSING, "", None, 42, ["user_1"], {"id": "user_1"}, True], ids=repr)
async def test_sub_must_be_a_non_empty_string(verify: Verifier, mint: Mint, sub: Any) -> None:
    assert await verify.reason(mint(sub=sub)) == "token-invalid-subject"


@pytest.mark.parametrize("sid", [MISSING, None, 42, ["sess_1"]], ids=repr)
async def test_sid_must_be_a_string(verify: Verifier, mint: Mint, sid: Any) -> None:
    assert await verify.reason(mint(sid=sid)) == "token-invalid-claims"


@pytest.mark.parametrize("claim", ["exp", "iat"])
@pytest.mark.parametrize("value", [MISSING, True, False, "1764150060", None, [1764150060]], ids=repr)
async def test_exp_and_iat_must_be_numbers(verify: Verifier, mint: Mint, claim: str, value: Any) -> None:
    assert await verify.reason(mint(**{claim: value})) == "token-invalid-claims"


@pytest.mark.parametrize("value", [True, "1764149990", None, [1]], ids=repr)
async def test_nbf_when_present_must_be_a_number(verify: Verifier, mint: Mint, value: Any) -> None:
    assert await verify.reason(mint(nbf=value)) == "token-invalid-claims"


async def test_nbf_is_optional_and_times_may_be_fractional(
    verify: Verifier, mint: Mint, clock: FrozenClock
) -> None:
    assert (await verify(mint(nbf=MISSING))).user_id
    session = await verify(mint(exp=clock.now + 30.5, iat=clock.now - 0.25, nbf=clock.now - 0.5))
    assert session.expires_at == clock.now + 30.5


@pytest.mark.parametrize(("skew", "offset"), [(5, 0), (0, 0), (30, 0), (5, 0.5)])
async def test_expiry_boundary_is_exact(
    make_verifier: MakeVerifier, mint: Mint, clock: FrozenClock, skew: float, offset: float
) -> None:
    verify = make_verifier(clock_skew=skew)
    now = clock.now + offset
    clock.now = now
    # exp <= now - skew is expired; one second later it is not.
    assert await verify.reason(mint(exp=now - skew)) == "token-expired"
    assert (await verify(mint(exp=now - skew + 1))).user_id


@pytest.mark.parametrize("skew", [5, 0, 30])
async def test_not_before_boundary_is_exact(
    make_verifier: MakeVerifier, mint: Mint, clock: FrozenClock, skew: float
) -> None:
    verify = make_verifier(clock_skew=skew)
    assert (await verify(mint(nbf=clock.now + skew))).user_id
    assert await verify.reason(mint(nbf=clock.now + skew + 1)) == "token-not-active-yet"


@pytest.mark.parametrize("skew", [5, 0, 30])
async def test_issued_in_the_future_boundary_is_exact(
    make_verifier: MakeVerifier, mint: Mint, clock: FrozenClock, skew: float
) -> None:
    verify = make_verifier(clock_skew=skew)
    assert (await verify(mint(iat=clock.now + skew, nbf=MISSING))).user_id
    assert await verify.reason(mint(iat=clock.now + skew + 1, nbf=MISSING)) == "token-iat-in-the-future"


async def test_zero_skew_is_honoured(make_verifier: MakeVerifier, mint: Mint, clock: FrozenClock) -> None:
    strict = make_verifier(clock_skew=0)
    lenient = make_verifier()
    token = mint(exp=clock.now - 3)
    assert await strict.reason(token) == "token-expired"
    assert (await lenient(token)).user_id


async def test_token_judged_again_after_the_clock_moves(
    verify: Verifier, mint: Mint, clock: FrozenClock
) -> None:
    token = mint(expires_in=60)
    assert (await verify(token)).user_id
    clock.now += 64
    assert (await verify(token)).user_id  # a remembered result is still rechecked...
    clock.now += 1
    assert await verify.reason(token) == "token-expired"  # ...and dropped at exp + skew


async def test_remembered_token_is_rechecked_against_not_before(
    verify: Verifier, mint: Mint, clock: FrozenClock
) -> None:
    token = mint(nbf=clock.now)
    assert (await verify(token)).user_id
    clock.now -= 60  # the clock was set back (NTP step): nbf is in the future again
    assert await verify.reason(token) == "token-not-active-yet"


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example",
        "{issuer}/",
        "{issuer} ",
        "{ISSUER}",
        ["{issuer}"],
        {"url": "{issuer}"},
        None,
        MISSING,
    ],
    ids=repr,
)
async def test_issuer_must_match_exactly(
    verify: Verifier, clerk_issuer: LocalIssuer, mint: Mint, iss: Any
) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(issuer=clerk_issuer.issuer, ISSUER=clerk_issuer.issuer.upper())
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    assert await verify.reason(mint(iss=fill(iss))) == "token-invalid-issuer"


async def test_explicit_issuer_option_is_enforced(
    make_verifier: MakeVerifier, mint: Mint, clerk_issuer: LocalIssuer
) -> None:
    other = make_verifier(issuer="https://clerk.other.example")
    assert await other.reason(mint()) == "token-invalid-issuer"
    assert (await other(mint(iss="https://clerk.other.example"))).issuer == "https://clerk.other.example"


PARTIES = ["https://app.example.com", "https://admin.example.com"]


@pytest.mark.parametrize("azp", ["https://app.example.com", "https://admin.example.com"])
async def test_listed_authorized_party_is_accepted(make_verifier: MakeVerifier, mint: Mint, azp: str) -> None:
    verify = make_verifier(authorized_parties=PARTIES)
    assert (await verify(mint(azp=azp))).authorized_party == azp


@pytest.mark.parametrize(
    "azp",
    [
        MISSING,
        None,
        "",
        "https://evil.example.com",
        "https://app.example.com/",
        "https://APP.example.com",
        ["https://app.example.com"],
        1,
    ],
    ids=repr,
)
async def test_unlisted_missing_or_non_string_party_is_rejected(
    make_verifier: MakeVerifier, mint: Mint, azp: Any
) -> None:
    verify = make_verifier(authorized_parties=PARTIES)
    assert await verify.reason(mint(azp=azp)) == "token-invalid-authorized-party"


async def test_without_authorized_parties_azp_is_not_checked(verify: Verifier, mint: Mint) -> None:
    assert (await verify(mint(azp=MISSING))).authorized_party is None
    assert (await verify(mint(azp="https://anything.example"))).user_id


async def test_pending_session_is_rejected_unless_allowed(make_verifier: MakeVerifier, mint: Mint) -> None:
    token = mint(status="pending")
    assert await make_verifier().reason(token) == "session-pending"
    session = await make_verifier(allow_pending_sessions=True)(token)
    assert session.session_status == "pending"


@pytest.mark.parametrize("sts", ["active", MISSING], ids=repr)
async def test_active_or_unversioned_session_is_accepted(verify: Verifier, mint: Mint, sts: Any) -> None:
    assert (await verify(mint(sts=sts))).user_id


# -- keys are scoped to one ClerkAuth --------------------------------------------------


@pytest.fixture(scope="module")
def twins() -> Iterator[tuple[LocalIssuer, LocalIssuer]]:
    """Two Clerk instances that happen to publish the same kid, each with its own key."""
    with LocalIssuer(kid="ins_shared") as first, LocalIssuer(kid="ins_shared") as second:
        yield first, second


async def test_same_kid_on_two_instances_never_crosses_over(
    twins: tuple[LocalIssuer, LocalIssuer], clock: FrozenClock, mode: str
) -> None:
    first, second = twins
    auths = [issuer.auth(clock=clock) for issuer in twins]
    verifiers = [Verifier(auth, mode) for auth in auths]
    try:
        tokens = [issuer.mint(issued_at=clock.now) for issuer in twins]
        # Warm both caches with their own tokens first.
        for verifier, token in zip(verifiers, tokens, strict=True):
            assert (await verifier(token)).issuer in (first.issuer, second.issuer)
        for _ in range(2):  # the second time, the one allowed refetch is spent
            assert await verifiers[0].reason(tokens[1]) == "token-invalid-signature"
            assert await verifiers[1].reason(tokens[0]) == "token-invalid-signature"
        for verifier, token in zip(verifiers, tokens, strict=True):
            assert (await verifier(token)).user_id  # each still accepts its own
        # Even with the issuer claim forged to match, the key is the other instance's.
        crossed = second.mint(issued_at=clock.now, iss=first.issuer)
        assert await verifiers[0].reason(crossed) == "token-invalid-signature"
    finally:
        for auth in auths:
            auth.close()
