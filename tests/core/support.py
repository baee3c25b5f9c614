"""Helpers of the core tests: a frozen clock, a sync/async verifier, hand-made tokens.

Tokens that :meth:`LocalIssuer.mint` cannot express (raw header or payload
bytes, exact lengths, other algorithms) are built here, always signed for
real so each one reaches the rule it is meant to hit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from clerkguard import AuthError, ClerkAuth, Session
from clerkguard.testing import SESSION_CATEGORY, LocalIssuer, b64url

#: A fixed "now" for claim checks (the ``iat`` of the design's example token).
T0 = 1_764_150_000

#: Both entry points; every rule is checked through each.
MODES = ("verify", "averify")


class FrozenClock:
    """``() -> Unix seconds`` that only moves when a test moves it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Verifier:
    """One :class:`ClerkAuth` driven through ``verify`` or ``averify``."""

    def __init__(self, auth: ClerkAuth, mode: str) -> None:
        self.auth = auth
        self.mode = mode

    async def __call__(self, token: Any) -> Session:
        if self.mode == "verify":
            return self.auth.verify(token)
        return await self.auth.averify(token)

    async def error(self, token: Any) -> AuthError:
        """The :class:`AuthError` the token is rejected with."""
        with pytest.raises(AuthError) as info:
            await self(token)
        return info.value

    async def reason(self, token: Any) -> str:
        """The reason of a 401 rejection (fails the test on any other outcome)."""
        error = await self.error(token)
        assert error.status == 401, (error.status, error.reason)
        return error.reason


def segment(part: Mapping[str, Any] | bytes) -> str:
    """A base64url segment of a JSON object, or of raw bytes taken as they are."""
    raw = part if isinstance(part, bytes) else json.dumps(dict(part), separators=(",", ":")).encode()
    return b64url(raw)


def rs256(signing_input: str, key: RSAKey) -> str:
    """The base64url RS256 signature of ``signing_input``."""
    return b64url(JWSRegistry.algorithms["RS256"].sign(signing_input.encode("ascii"), key))


def sign_segments(header_seg: str, payload_seg: str, key: RSAKey) -> str:
    """Sign two already-encoded segments exactly as given (even malformed ones)."""
    return f"{header_seg}.{payload_seg}.{rs256(f'{header_seg}.{payload_seg}', key)}"


def sign_raw(header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes, key: RSAKey) -> str:
    """Sign a header and payload given as dicts or as raw JSON bytes."""
    return sign_segments(segment(header), segment(payload), key)


def header_for(issuer: LocalIssuer, **changes: Any) -> dict[str, Any]:
    """The header :meth:`LocalIssuer.mint` uses, with ``changes`` applied."""
    return {"alg": "RS256", "cat": SESSION_CATEGORY, "kid": issuer.kid, "typ": "JWT", **changes}


def payload_bytes(claims: Mapping[str, Any], **raw_members: str) -> bytes:
    """Compact JSON of ``claims`` with extra members spliced in as raw JSON text.

    ``raw_members`` lets a test write what ``json.dumps`` refuses to produce
    (``NaN``, a duplicate name, a lone surrogate escape).
    """
    text = json.dumps(dict(claims), separators=(",", ":"))
    extra = "".join(f",{json.dumps(name)}:{value}" for name, value in raw_members.items())
    return (text[:-1] + extra + "}").encode()


def hs256_with_public_key(issuer: LocalIssuer, payload: Mapping[str, Any]) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the public PEM."""
    head = segment(header_for(issuer, alg="HS256"))
    body = segment(payload)
    mac = hmac.new(issuer.public_pem().encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def _b64_len(n_bytes: int) -> int:
    return math.ceil(4 * n_bytes / 3)


def mint_of_length(issuer: LocalIssuer, length: int, **options: Any) -> str:
    """A correctly signed token exactly ``length`` characters long.

    A filler claim grows the payload and an ignored header member fine-tunes
    the total (a base64url segment can never be 4k+1 characters long).
    """
    claims = issuer.claims(**options)
    sig_len = len(rs256("a.b", issuer.key))
    base_len = len(json.dumps({**claims, "filler": ""}, separators=(",", ":")).encode())
    for header_pad in range(4):
        header = header_for(issuer, **({"pad": "x" * header_pad} if header_pad else {}))
        head_len = len(segment(header))
        for filler in range(length):
            total = head_len + 1 + _b64_len(base_len + filler) + 1 + sig_len
            if total == length:
                token = sign_raw(header, {**claims, "filler": "f" * filler}, issuer.key)
                assert len(token) == length
                return token
            if total > length:
                break
    raise AssertionError(f"cannot build a token of exactly {length} characters")
