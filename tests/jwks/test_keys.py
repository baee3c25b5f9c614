"""Per-key JWKS validation: a bad key is skipped with a reason, never fatal to the set."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from clerkguard._core.keys import MAX_JWKS_BYTES, MAX_KEYS, JWKSError, KeySet, parse_jwks
from clerkguard.testing import b64url

GOOD = RSAKey.generate_key(2048, private=True)
OTHER = RSAKey.generate_key(2048, private=True)
with warnings.catch_warnings():  # joserfc rightly warns about the small key we want to be refused
    warnings.simplefilter("ignore")
    SMALL = RSAKey.generate_key(1024, private=True)


def jwk(key: RSAKey = GOOD, kid: str = "ins_good", **changes: Any) -> dict[str, Any]:
    """A Clerk-shaped public JWK; ``changes`` override members (``None`` removes one)."""
    public = key.as_dict(private=False)
    entry: dict[str, Any] = {"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256", "n": public["n"]}
    entry["e"] = public["e"]
    for name, value in changes.items():
        if value is None:
            entry.pop(name, None)
        else:
            entry[name] = value
    return entry


def parse(*keys: Any) -> KeySet:
    return parse_jwks(json.dumps({"keys": list(keys)}).encode())


def b64_int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def test_a_clerk_shaped_key_is_usable() -> None:
    keyset = parse(jwk())
    assert set(keyset.keys) == {"ins_good"}
    assert keyset.skipped == ()
    assert keyset.get("ins_good") is not None
    assert keyset.get("ins_other") is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"kty": "EC"}, "not an RSA key"),
        ({"use": "enc"}, "use is not 'sig'"),
        ({"alg": "RS512"}, "alg is not RS256"),
        ({"alg": "none"}, "alg is not RS256"),
        ({"key_ops": ["sign"]}, "key_ops does not allow verify"),
        ({"key_ops": "verify"}, "key_ops does not allow verify"),
        ({"d": "AQAB"}, "private key material published"),
        ({"n": None}, "n missing or not a string"),
        ({"n": 12345}, "n missing or not a string"),
        ({"e": ""}, "e missing or not a string"),
        ({"e": "AQAB="}, "e is not base64url without padding"),
        ({"n": "a+b/"}, "n is not base64url without padding"),
        ({"e": b64_int(1)}, "unsafe public exponent"),
        ({"e": b64_int(65536)}, "unsafe public exponent"),
        ({"e": b64_int(2**33 + 1)}, "unsafe public exponent"),
        ({"n": b64_int(2**2047 + 2)}, "modulus is even"),
        ({"n": b64_int(2**8193 + 1)}, "modulus of 8194 bits outside 2048..8192"),
    ],
)
def test_an_unsuitable_key_is_skipped_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    keyset = parse(jwk(**changes, kid="ins_bad"), jwk())
    assert set(keyset.keys) == {"ins_good"}
    assert [(s.kid, s.reason) for s in keyset.skipped] == [("ins_bad", reason)]


def test_a_1024_bit_key_is_skipped() -> None:
    keyset = parse(jwk(SMALL, kid="ins_small"), jwk())
    assert [(s.kid, s.reason) for s in keyset.skipped] == [
        ("ins_small", "modulus of 1024 bits outside 2048..8192")
    ]


@pytest.mark.parametrize("entry", ["a string", 42, None, ["list"]])
def test_a_non_object_entry_is_skipped(entry: Any) -> None:
    keyset = parse(entry, jwk())
    assert [(s.kid, s.reason) for s in keyset.skipped] == [(None, "not a JSON object")]


@pytest.mark.parametrize("kid", [None, "", 7, "k" * 257])
def test_a_key_without_a_sane_kid_is_skipped(kid: Any) -> None:
    bad = jwk(kid="x")
    bad["kid"] = kid
    if kid is None:
        del bad["kid"]
    keyset = parse(bad, jwk())
    assert [(s.kid, s.reason) for s in keyset.skipped] == [(None, "kid missing or not a string")]


def test_two_different_keys_under_one_kid_make_that_kid_unusable() -> None:
    keyset = parse(jwk(GOOD, kid="ins_1"), jwk(OTHER, kid="ins_1"), jwk(OTHER, kid="ins_2"))
    assert set(keyset.keys) == {"ins_2"}
    assert ("ins_1", "two different keys share this kid") in [(s.kid, s.reason) for s in keyset.skipped]


def test_the_same_key_published_twice_is_fine() -> None:
    keyset = parse(jwk(GOOD, kid="ins_1"), jwk(GOOD, kid="ins_1"))
    assert set(keyset.keys) == {"ins_1"}


def test_a_set_without_any_usable_key_is_an_error_listing_every_skipped_key() -> None:
    with pytest.raises(JWKSError, match="no usable key in the set") as info:
        parse(jwk(SMALL, kid="a"), jwk(kty="EC", kid="b"))
    assert [(s.kid, s.reason) for s in info.value.skipped] == [
        ("a", "modulus of 1024 bits outside 2048..8192"),
        ("b", "not an RSA key"),
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'{"keys": []}', "no usable key in the set"),
        (b"{}", "no 'keys' array"),
        (b'{"keys": {}}', "no 'keys' array"),
        (b"[]", "invalid JSON"),
        (b"not json", "invalid JSON"),
        (b'{"keys": [], "keys": []}', "invalid JSON"),
        ('{"keys": []}'.encode("utf-16"), "invalid JSON"),
        (b" " * (MAX_JWKS_BYTES + 1), "document larger than 1 MiB"),
    ],
)
def test_an_unusable_document_is_an_error(document: bytes, message: str) -> None:
    with pytest.raises(JWKSError, match=message):
        parse_jwks(document)


def test_only_the_first_keys_of_a_huge_set_are_examined() -> None:
    keys = [jwk(kty="EC", kid=f"k{i}") for i in range(MAX_KEYS)] + [jwk()]
    with pytest.raises(JWKSError) as info:
        parse(*keys)  # the good key is number 65: never looked at
    assert info.value.skipped[-1].reason == f"more than {MAX_KEYS} keys; the rest were ignored"


def test_fingerprint_identifies_the_material_whatever_the_order() -> None:
    one = parse(jwk(GOOD, kid="a"), jwk(OTHER, kid="b"))
    two = parse(jwk(OTHER, kid="b"), jwk(GOOD, kid="a"))
    rotated = parse(jwk(OTHER, kid="a"), jwk(OTHER, kid="b"))
    assert one.fingerprint == two.fingerprint
    assert one.fingerprint != rotated.fingerprint


def test_skipped_reasons_never_quote_key_material() -> None:
    marker = b64url(b"SECRET-LOOKING-MATERIAL" * 4)
    keyset = parse(jwk(n=marker, kid="ins_bad"), jwk(kty="oct", k=marker, kid="ins_hmac"), jwk())
    assert len(keyset.skipped) == 2
    assert all(marker not in s.reason for s in keyset.skipped)
