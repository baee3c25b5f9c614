"""Parsing and validating JSON Web Key Sets (RFC 7517), one key at a time.

A malformed or unsuitable key is skipped with a reason, never fatal to the
set: Clerk may publish keys this library does not use. Two *different* keys
under one ``kid`` make that ``kid`` unusable (an attacker who can add a key
must not be able to shadow the real one).
"""

from __future__ import annotations

import base64
import binascii
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .jsonstrict import StrictJSONError, loads_object

if TYPE_CHECKING:
    from joserfc.jwk import RSAKey

__all__ = ["KeySet", "SkippedKey", "parse_jwks", "key_from_pem", "MAX_JWKS_BYTES"]

#: Largest JWKS document read, after decompression.
MAX_JWKS_BYTES = 1024 * 1024
#: Most keys looked at in one document (Clerk publishes one or two).
MAX_KEYS = 64
MIN_MODULUS_BITS = 2048
MAX_MODULUS_BITS = 8192


class JWKSError(ValueError):
    """The document as a whole is unusable (not JSON, no ``keys``, no usable key).

    Attributes:
        skipped: With "no usable key": every key and why it was skipped
            (so tools such as ``clerkguard jwks`` can explain the failure).
    """

    def __init__(self, message: str, skipped: tuple[SkippedKey, ...] = ()) -> None:
        super().__init__(message)
        self.skipped = skipped


@dataclass(frozen=True)
class SkippedKey:
    """A JWK that was not used, and why."""

    kid: str | None
    reason: str


@dataclass(frozen=True)
class KeySet:
    """The usable keys of one JWKS document, by ``kid``.

    Attributes:
        keys: ``kid`` -> verification key.
        skipped: keys that were present but not usable, with reasons.
        fingerprint: identifies the key material; equal sets compare equal.
    """

    keys: Mapping[str, RSAKey]
    skipped: tuple[SkippedKey, ...] = ()
    fingerprint: tuple[tuple[str, str, str], ...] = field(default=(), compare=False)

    def get(self, kid: str) -> RSAKey | None:
        """The key for ``kid``, or ``None``."""
        return self.keys.get(kid)


def _b64u_uint(value: Any, name: str) -> int:
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise ValueError(f"{name} missing or not a string")
    if "=" in value or "+" in value or "/" in value:
        raise ValueError(f"{name} is not base64url without padding")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not base64url") from None
    return int.from_bytes(raw, "big")


def _validate_rsa(jwk: Mapping[str, Any]) -> RSAKey:
    if jwk.get("kty") != "RSA":
        raise ValueError("not an RSA key")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("use is not 'sig'")
    if jwk.get("alg", "RS256") != "RS256":
        raise ValueError("alg is not RS256")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError("key_ops does not allow verify")
    if any(p in jwk for p in ("d", "p", "q", "dp", "dq", "qi")):
        raise ValueError("private key material published")
    n = _b64u_uint(jwk.get("n"), "n")
    e = _b64u_uint(jwk.get("e"), "e")
    bits = n.bit_length()
    if not MIN_MODULUS_BITS <= bits <= MAX_MODULUS_BITS:
        raise ValueError(f"modulus of {bits} bits outside {MIN_MODULUS_BITS}..{MAX_MODULUS_BITS}")
    if n % 2 == 0:  # a product of two large primes is odd
        raise ValueError("modulus is even")
    if e < 3 or e % 2 == 0 or e.bit_length() > 32:
        raise ValueError("unsafe public exponent")
    public = {"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}
    from joserfc.jwk import RSAKey  # with the first key, not at `import clerkguard`

    key: RSAKey = RSAKey.import_key(public)
    return key


def parse_jwks(data: bytes) -> KeySet:
    """Parse and validate a JWKS document.

    Raises:
        JWKSError: when the document is unusable as a whole, including when it
            holds no usable key (that must never replace a good key set).
    """
    if len(data) > MAX_JWKS_BYTES:
        raise JWKSError("document larger than 1 MiB")
    try:
        doc = loads_object(data)
    except StrictJSONError as exc:
        raise JWKSError(f"invalid JSON ({exc})") from None
    raw_keys = doc.get("keys")
    if not isinstance(raw_keys, list):
        raise JWKSError("no 'keys' array")
    keys: dict[str, RSAKey] = {}
    material: dict[str, tuple[str, str]] = {}
    conflicted: set[str] = set()
    skipped: list[SkippedKey] = []
    for jwk in raw_keys[:MAX_KEYS]:
        if not isinstance(jwk, dict):
            skipped.append(SkippedKey(None, "not a JSON object"))
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            skipped.append(SkippedKey(None, "kid missing or not a string"))
            continue
        try:
            key = _validate_rsa(jwk)
        except Exception as exc:  # joserfc and int parsing raise many types
            skipped.append(SkippedKey(kid, str(exc) if isinstance(exc, ValueError) else "invalid key"))
            continue
        pair = (str(jwk["n"]), str(jwk["e"]))
        if kid in material and material[kid] != pair:
            conflicted.add(kid)
            continue
        material[kid] = pair
        keys[kid] = key
    if len(raw_keys) > MAX_KEYS:
        skipped.append(SkippedKey(None, f"more than {MAX_KEYS} keys; the rest were ignored"))
    for kid in sorted(conflicted):
        keys.pop(kid, None)
        material.pop(kid, None)
        skipped.append(SkippedKey(kid, "two different keys share this kid"))
    if not keys:
        raise JWKSError("no usable key in the set", tuple(skipped))
    fingerprint = tuple(sorted((kid, n, e) for kid, (n, e) in material.items()))
    return KeySet(keys=keys, skipped=tuple(skipped), fingerprint=fingerprint)


def key_from_pem(pem: str) -> RSAKey:
    """Load the PEM public key shown in the Clerk dashboard ("JWT public key").

    Raises:
        ValueError: when ``pem`` is not an RSA public key of a sane size.
    """
    from joserfc.jwk import RSAKey  # with the first key, not at `import clerkguard`

    text = pem.strip().replace("\\n", "\n")
    if "PRIVATE KEY" in text:
        raise ValueError("a private key was given where the public key belongs")
    try:
        with warnings.catch_warnings():
            # joserfc warns about small keys; the size check below rejects them.
            warnings.simplefilter("ignore")
            key: RSAKey = RSAKey.import_key(text)
    except Exception:
        raise ValueError("not a PEM-encoded RSA public key") from None
    if key.is_private:
        raise ValueError("a private key was given where the public key belongs")
    bits = key.public_key.key_size
    if not MIN_MODULUS_BITS <= bits <= MAX_MODULUS_BITS:
        raise ValueError(f"modulus of {bits} bits outside {MIN_MODULUS_BITS}..{MAX_MODULUS_BITS}")
    return key
