"""Token shape, header and claim checks (design section 4), without I/O.

The order matters: size and shape before any decoding, the header before a
key is looked up, the signature before any claim is read (no claim oracle on
forged tokens).
"""

from __future__ import annotations

import binascii
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NotAuthenticated
from .jsonstrict import StrictJSONError, loads_object

if TYPE_CHECKING:
    from joserfc.jwk import RSAKey

__all__ = [
    "HEADER_M2M",
    "HEADER_NEUTRAL",
    "HEADER_OAUTH",
    "HEADER_SESSION",
    "ClaimPolicy",
    "ParsedToken",
    "check_claims",
    "check_machine_claims",
    "decode_payload",
    "parse_token",
    "verify_signature",
]

#: Longest token accepted (Clerk's own limit is 4 KB).
MAX_TOKEN_LENGTH = 8192
#: Clerk token categories (the ``cat`` header) that are session tokens.
SESSION_CATEGORIES = frozenset({"cl_B7d4PD111AAA", "cl_I7d4PD111III"})
#: Clerk's session-token category, its M2M category, and the "ignore" category
#: (instances with ``use_ignore_jwt_cat`` stamp it on every class: no class info).
CATEGORY_SESSION = "cl_B7d4PD111AAA"
CATEGORY_M2M = "cl_B7d4PD333AAA"
CATEGORY_IGNORE = "cl_I7d4PD111III"
#: ``typ`` of OAuth 2.0 JWT access tokens (RFC 9068 section 2.1), as Clerk checks it.
OAUTH_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: The M2M subject prefix: a JWT for machine ``mch_...`` is an M2M token.
M2M_SUBJECT_PREFIX = "mch_"

# What the header says about the token's kind (ParsedToken.header_kind):
#: ``cat`` is the session category: a session token, nothing else.
HEADER_SESSION = 0
#: No ``cat`` (or the "ignore" one), ``typ`` JWT: a session token, or an M2M
#: token when ``sub`` is ``mch_...`` (Clerk's own rule).
HEADER_NEUTRAL = 1
#: ``cat`` is the M2M category.
HEADER_M2M = 2
#: ``typ`` is ``at+jwt``: an OAuth access token.
HEADER_OAUTH = 3

# RFC 7515 compact serialisation: three base64url segments, no padding.
# Deleting every base64url character must leave exactly the two separators:
# one C pass over the bytes, three times cheaper than a regex on a 1 KB token.
_B64URL_ALPHABET = (string.ascii_letters + string.digits + "-_").encode("ascii")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# RFC 4648 section 3.5: the unused low bits of a segment's last character must
# be zero. Otherwise one token has 4 or 16 spellings that all verify (a changed
# last signature character still passed). Keyed by the segment length mod 4.
_CANONICAL_LAST = {2: "AQgw", 3: "AEIMQUYcgkosw048"}
# RS256 = RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 section 3.3). Both objects
# are stateless, so one instance of each serves every call and thread.
#: (PKCS1v15(), SHA256()), shared by every verification; built by the first one
#: (a key exists by then), so that `import clerkguard` doesn't load cryptography.
_RS256: tuple[Any, Any] | None = None


def _rs256() -> tuple[Any, Any]:
    global _RS256
    if _RS256 is None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        _RS256 = (padding.PKCS1v15(), hashes.SHA256())
    return _RS256


# Headers this library understands; anything else not listed is ignored,
# except `crit`, which RFC 7515 section 4.1.11 says must be understood.
_HEADER_CACHE_SIZE = 256
#: Marks a member that is not in a JSON object at all (``null`` is a value).
_ABSENT: Any = object()


# Not frozen: a frozen dataclass's __init__ costs three times as much, once
# per token, and this object lives only inside one verify call.
@dataclass(slots=True)
class ParsedToken:
    """A token whose shape and header passed; signature not yet checked."""

    kid: str
    signing_input: bytes
    signature: bytes
    payload_segment: str
    #: One of the ``HEADER_*`` constants.
    header_kind: int = HEADER_SESSION


def _b64decode(segment: str) -> bytes:
    # base64.urlsafe_b64decode, minus its per-call argument coercion: segments
    # here passed the shape check, so they hold base64url characters only.
    size = len(segment)
    if size % 4:
        if size % 4 == 1:
            raise ValueError("impossible base64url length")
        if segment[-1] not in _CANONICAL_LAST[size % 4]:
            raise ValueError("non-canonical base64url")
    data = segment.encode("ascii").translate(_URLSAFE_TO_STANDARD)
    return binascii.a2b_base64(data + b"=" * (-size % 4))


def _malformed(detail: str) -> NotAuthenticated:
    return NotAuthenticated("token-malformed", detail)


def _check_header(segment: str) -> tuple[str, int]:
    """Validate a header segment; return its ``kid`` and what it says about the kind."""
    try:
        header = loads_object(_b64decode(segment))
    except (ValueError, binascii.Error, StrictJSONError):
        raise _malformed("the token header is not a base64url JSON object") from None
    if header.get("alg") != "RS256":
        raise NotAuthenticated("token-invalid-algorithm", "only RS256 tokens are accepted")
    if "crit" in header:
        raise NotAuthenticated("token-invalid-header", "critical header extensions are not supported")
    typ = header.get("typ", "JWT")
    oauth = isinstance(typ, str) and typ in OAUTH_TYPES
    if typ != "JWT" and not oauth:
        raise NotAuthenticated("token-invalid-header", "the token type is not JWT")
    # An explicit `"cat": null` is not an absent category; and a list or
    # object must not reach the (hashing) set lookup.
    cat = header.get("cat", _ABSENT)
    if cat is _ABSENT or cat == CATEGORY_IGNORE:
        kind = HEADER_OAUTH if oauth else HEADER_NEUTRAL
    elif cat == CATEGORY_SESSION and not oauth:
        kind = HEADER_SESSION
    elif cat == CATEGORY_M2M and not oauth:
        kind = HEADER_M2M
    else:  # JWT templates, unknown categories, an OAuth type with a Clerk category
        raise NotAuthenticated("token-type-mismatch", "the token is not a Clerk session or machine token")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise NotAuthenticated("token-invalid-header", "the token header has no key id")
    # jku / x5u / x5c / jwk are never consulted: keys come only from configuration.
    return kid, kind


class HeaderCache:
    """Remembers validated header segments (one client sends one header forever)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, int]] = {}

    def kid_for(self, segment: str) -> tuple[str, int]:
        """``(kid, header kind)`` of a valid header segment."""
        found = self._entries.get(segment)
        if found is None:
            found = _check_header(segment)
            if len(self._entries) >= _HEADER_CACHE_SIZE:
                self._entries.clear()
            self._entries[segment] = found
        return found


def parse_token(token: object, headers: HeaderCache) -> ParsedToken:
    """Check size, shape and header of ``token``.

    Raises:
        NotAuthenticated: with reason ``token-missing``, ``token-too-large``,
            ``token-malformed``, ``token-invalid-algorithm``,
            ``token-invalid-header`` or ``token-type-mismatch``.
    """
    # Type first: comparing an arbitrary object with "" may itself raise.
    if token is None or (isinstance(token, str) and not token):
        raise NotAuthenticated("token-missing", "no session token was provided", token_present=False)
    if not isinstance(token, str):
        raise _malformed("the token is not a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise NotAuthenticated("token-too-large", "the token is longer than 8 KiB")
    if not token.isascii():
        raise _malformed("the token is not three base64url segments")
    data = token.encode("ascii")
    if data.translate(None, _B64URL_ALPHABET) != b"..":
        raise _malformed("the token is not three base64url segments")
    header_seg, payload_seg, sig_seg = token.split(".")
    if not header_seg or not payload_seg or not sig_seg:
        raise _malformed("the token is not three base64url segments")
    kid, header_kind = headers.kid_for(header_seg)
    try:
        signature = _b64decode(sig_seg)
    except (ValueError, binascii.Error):
        raise _malformed("the token signature is not base64url") from None
    signing_input = data[: len(header_seg) + 1 + len(payload_seg)]
    return ParsedToken(kid, signing_input, signature, payload_seg, header_kind)


def verify_signature(parsed: ParsedToken, key: RSAKey) -> bool:
    """RS256 signature check: what joserfc's RS256 does, without its per-call allocations."""
    pkcs1v15, sha256 = _RS256 or _rs256()
    try:
        # get_op_key enforces the JWK's key_ops, as joserfc's algorithm does.
        key.get_op_key("verify").verify(parsed.signature, parsed.signing_input, pkcs1v15, sha256)
    except Exception:  # InvalidSignature; a wrong-length signature may raise otherwise
        return False
    return True


def decode_payload(parsed: ParsedToken) -> dict[str, Any]:
    """Decode the (already signature-checked) payload strictly."""
    try:
        return loads_object(_b64decode(parsed.payload_segment))
    except (ValueError, binascii.Error, StrictJSONError):
        raise _malformed("the token payload is not a base64url JSON object") from None


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    """What the claims of a signed token must satisfy."""

    issuer: str
    authorized_parties: frozenset[str] | None
    clock_skew: float
    allow_pending: bool = False


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_claims(claims: dict[str, Any], policy: ClaimPolicy, now: float) -> None:
    """Apply the claim rules of design section 4.

    Raises:
        NotAuthenticated: with a reason naming the failed rule.
    """
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise NotAuthenticated("token-invalid-subject", "the token has no subject")
    if sub.startswith(M2M_SUBJECT_PREFIX):  # a machine's token under a session category
        raise NotAuthenticated("token-type-mismatch", "the token is not a Clerk session token")
    if not isinstance(claims.get("sid"), str):
        raise NotAuthenticated("token-invalid-claims", "the token has no session id")
    _check_times(claims, policy.clock_skew, now)
    if claims.get("iss") != policy.issuer:
        raise NotAuthenticated("token-invalid-issuer", "the token was issued by another issuer")
    if policy.authorized_parties is not None:
        azp = claims.get("azp")
        if not isinstance(azp, str) or azp not in policy.authorized_parties:
            raise NotAuthenticated(
                "token-invalid-authorized-party", "the token was issued to an unlisted party"
            )
    if claims.get("sts") == "pending" and not policy.allow_pending:
        raise NotAuthenticated("session-pending", "the session has pending tasks")


def _check_times(claims: dict[str, Any], skew: float, now: float) -> None:
    exp: Any = claims.get("exp")
    iat: Any = claims.get("iat")
    # `nbf` is optional, but a present `"nbf": null` is not a number (Clerk agrees).
    nbf: Any = claims.get("nbf", _ABSENT)
    if not _is_number(exp) or not _is_number(iat) or (nbf is not _ABSENT and not _is_number(nbf)):
        raise NotAuthenticated("token-invalid-claims", "exp, iat and nbf must be numbers")
    if exp <= now - skew:
        raise NotAuthenticated("token-expired", "the token has expired")
    if nbf is not _ABSENT and nbf > now + skew:
        raise NotAuthenticated("token-not-active-yet", "the token is not valid yet")
    if iat > now + skew:
        raise NotAuthenticated("token-iat-in-the-future", "the token was issued in the future")


def check_machine_claims(claims: dict[str, Any], m2m: bool, skew: float, now: float) -> None:
    """The claim rules of a JWT M2M token (``m2m``) or OAuth access token.

    The same time rules as sessions. ``iss`` and ``azp`` are not compared:
    the instance's own keys bind the token to it (Clerk's SDK compares
    neither), and machine tokens come from servers, not browser origins.

    Raises:
        NotAuthenticated: with a reason naming the failed rule.
    """
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise NotAuthenticated("token-invalid-subject", "the token has no subject")
    if m2m != sub.startswith(M2M_SUBJECT_PREFIX):
        # An M2M category on a user's token, or an OAuth token for a machine.
        raise NotAuthenticated("token-type-mismatch", "the token's subject does not fit its type")
    _check_times(claims, skew, now)
    for name in ("jti", "iss", "scope", "scopes", "client_id"):
        value = claims.get(name)
        if value is not None and not isinstance(value, str):
            raise NotAuthenticated("token-invalid-claims", f"{name} must be a string")


Clock = Callable[[], float]
