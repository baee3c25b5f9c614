"""Machine credentials: M2M tokens, OAuth access tokens and API keys.

Clerk issues four kinds of credential; a route names the ones it accepts with
``accepts_token`` (Clerk's names):

=================  ====================================================  ==========================
kind               how it is recognised                                  how it is verified
=================  ====================================================  ==========================
``session_token``  a JWT (default everywhere)                            locally, JWKS
``m2m_token``      ``mt_...``; or a JWT whose ``sub`` is ``mch_...``      Backend API; JWT: locally
                   (header ``cat`` ``cl_B7d4PD333AAA`` when present)
``oauth_token``    ``oat_...``; or a JWT with ``typ`` ``at+jwt``          Backend API; JWT: locally
``api_key``        ``ak_...``                                            Backend API
=================  ====================================================  ==========================

A verified machine credential is a `MachineCredential`; a handler
that accepts several kinds takes a [`Credential`][clerkguard.Credential]
(``Session | MachineCredential``) and tells them apart by ``.token_type``
(both have it, and type checkers narrow the union on it)::

    def who(credential: Credential) -> str:
        if credential.token_type == "session_token":
            return credential.user_id  # a Session here
        return credential.subject  # a MachineCredential here
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

from ._frozen import EMPTY, freeze, thaw
from .errors import ConfigurationError
from .session import Session

__all__ = [
    "API_KEY",
    "KINDS",
    "M2M_TOKEN",
    "MACHINE_KINDS",
    "OAUTH_TOKEN",
    "SESSION_TOKEN",
    "AcceptsToken",
    "Credential",
    "MachineCredential",
    "MachineTokenType",
    "TokenType",
    "accepted_kinds",
]

TokenType = Literal["session_token", "m2m_token", "oauth_token", "api_key"]
#: The kinds a [`MachineCredential`][clerkguard.MachineCredential] can be (every kind but sessions).
MachineTokenType = Literal["m2m_token", "oauth_token", "api_key"]
#: What ``accepts_token`` takes: one kind, several, or ``"any"``.
AcceptsToken = TokenType | Literal["any"] | Iterable[TokenType]

SESSION_TOKEN: Final = "session_token"
M2M_TOKEN: Final = "m2m_token"
OAUTH_TOKEN: Final = "oauth_token"
API_KEY: Final = "api_key"
#: Every kind, in Clerk's order.
KINDS: frozenset[TokenType] = frozenset({SESSION_TOKEN, M2M_TOKEN, OAUTH_TOKEN, API_KEY})
#: The kinds read from the ``Authorization: Bearer`` header only.
MACHINE_KINDS: frozenset[str] = frozenset({M2M_TOKEN, OAUTH_TOKEN, API_KEY})

#: Opaque-token prefixes (Clerk's ``M2M_TOKEN_PREFIX`` & co.).
OPAQUE_PREFIXES: Mapping[str, str] = MappingProxyType({"mt_": M2M_TOKEN, "oat_": OAUTH_TOKEN, "ak_": API_KEY})

_SESSION_ONLY: frozenset[TokenType] = frozenset({SESSION_TOKEN})
_known: dict[object, frozenset[TokenType]] = {
    SESSION_TOKEN: _SESSION_ONLY,
    M2M_TOKEN: frozenset({M2M_TOKEN}),
    OAUTH_TOKEN: frozenset({OAUTH_TOKEN}),
    API_KEY: frozenset({API_KEY}),
    "any": KINDS,
}


def accepted_kinds(accepts_token: object) -> frozenset[TokenType]:
    """Normalise an ``accepts_token`` value into a set of kinds.

    Raises:
        ConfigurationError: for an unknown kind, an empty list, or another type.
    """
    if isinstance(accepts_token, str):
        found = _known.get(accepts_token)
        if found is None:
            raise ConfigurationError(
                f"accepts_token: unknown kind {accepts_token[:40]!r}; use one of "
                "'session_token', 'm2m_token', 'oauth_token', 'api_key', a list of them, or 'any'"
            )
        return found
    if isinstance(accepts_token, frozenset) and accepts_token and accepts_token <= KINDS:
        return accepts_token  # already normalised (guards pass theirs on every request)
    if not isinstance(accepts_token, Iterable) or isinstance(accepts_token, (bytes, Mapping)):
        raise ConfigurationError("accepts_token: must be a kind, a list of kinds, or 'any'")
    kinds: set[TokenType] = set()
    for item in accepts_token:
        if not isinstance(item, str) or item == "any":
            raise ConfigurationError("accepts_token: a list may only hold kinds (not 'any')")
        kinds |= accepted_kinds(item)
    if not kinds:
        raise ConfigurationError("accepts_token: name at least one kind")
    return frozenset(kinds)


#: JWT claims that are mapped onto fields (Clerk's ``M2M_RESERVED_JWT_CLAIMS``);
#: the rest of an M2M JWT's payload are its custom ``claims``.
_M2M_RESERVED = frozenset({"iss", "sub", "exp", "nbf", "iat", "jti"})
#: The same for OAuth access tokens (RFC 9068 section 2.2 and Clerk's fields).
_OAUTH_RESERVED = _M2M_RESERVED | {
    "client_id",
    "scope",
    "scp",
    "aud",
    "azp",
    "sid",
    "auth_time",
    "acr",
    "amr",
}


def _split_scopes(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part for part in value.split(" ") if part)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return ()


class MachineCredential:
    """A verified machine credential (M2M token, OAuth access token or API key). Immutable.

    Attributes:
        token_type: ``"m2m_token"``, ``"oauth_token"`` or ``"api_key"``
            (a [`Session`][clerkguard.Session] says ``"session_token"``).
        id: Clerk's id of the token (``mt_...``, ``oat_...``, ``ak_...``; a
            JWT's ``jti``, empty when it has none).
        subject: Who it acts for: ``mch_...`` (a machine), ``user_...`` or ``org_...``.
        scopes: Granted scopes (M2M: the machine ids it may call; OAuth:
            OAuth scopes; API keys: the scopes set on the key).
        name: The API key's name; ``None`` for other kinds.
        client_id: The OAuth application's client id; ``None`` for other kinds.
        expires_at: Expiry (Unix seconds), ``None`` for credentials that never expire.
        issued_at: Creation time (Unix seconds), ``None`` when unknown.
        format: ``"jwt"`` (verified locally) or ``"opaque"`` (verified by the Backend API).
    """

    __slots__ = (
        "_claims",
        "_claims_src",
        "_raw",
        "_raw_src",
        "client_id",
        "expires_at",
        "format",
        "id",
        "issued_at",
        "name",
        "scopes",
        "subject",
        "token_type",
    )

    token_type: MachineTokenType
    id: str
    subject: str
    scopes: tuple[str, ...]
    name: str | None
    client_id: str | None
    expires_at: float | None
    issued_at: float | None
    format: Literal["jwt", "opaque"]
    _claims_src: Mapping[str, Any] | None
    _raw_src: Mapping[str, Any] | None
    _claims: Mapping[str, Any] | None
    _raw: Mapping[str, Any] | None

    def __init__(
        self,
        *,
        token_type: TokenType,
        id: str,  # noqa: A002 - Clerk's field name
        subject: str,
        scopes: Iterable[str] = (),
        claims: Mapping[str, Any] | None = None,
        name: str | None = None,
        client_id: str | None = None,
        expires_at: float | None = None,
        issued_at: float | None = None,
        format: Literal["jwt", "opaque"] = "opaque",  # noqa: A002 - the natural name
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        if token_type not in MACHINE_KINDS:
            raise ValueError(f"not a machine token kind: {token_type!r}")
        set_ = object.__setattr__
        set_(self, "token_type", token_type)
        set_(self, "id", id)
        set_(self, "subject", subject)
        set_(self, "scopes", tuple(scopes))
        set_(self, "name", name)
        set_(self, "client_id", client_id)
        set_(self, "expires_at", expires_at)
        set_(self, "issued_at", issued_at)
        set_(self, "format", format)
        # Copied now (the caller keeps its dicts), frozen on first read.
        set_(self, "_claims_src", thaw(claims) if claims else None)
        set_(self, "_raw_src", thaw(raw) if raw else None)
        set_(self, "_claims", None)
        set_(self, "_raw", None)

    @classmethod
    def _from_jwt(cls, kind: TokenType, payload: dict[str, Any]) -> MachineCredential:
        """Wrap a verified JWT payload (owned: not copied; frozen lazily)."""
        self = object.__new__(cls)
        set_ = object.__setattr__
        m2m = kind == M2M_TOKEN
        set_(self, "token_type", kind)
        jti = payload.get("jti")
        set_(self, "id", jti if isinstance(jti, str) else "")
        set_(self, "subject", payload["sub"])
        if m2m:  # Clerk: `scopes` (space-separated), else the `aud` list
            scopes = (
                _split_scopes(payload["scopes"]) if "scopes" in payload else _split_scopes(payload.get("aud"))
            )
        else:  # RFC 9068 `scope`; Clerk also reads a `scp` list first
            scopes = (
                _split_scopes(payload["scp"]) if "scp" in payload else _split_scopes(payload.get("scope"))
            )
        set_(self, "scopes", scopes)
        set_(self, "name", None)
        client = payload.get("client_id")
        set_(self, "client_id", None if m2m or not isinstance(client, str) else client)
        set_(self, "expires_at", payload["exp"])
        set_(self, "issued_at", payload["iat"])
        set_(self, "format", "jwt")
        reserved = _M2M_RESERVED if m2m else _OAUTH_RESERVED
        set_(self, "_claims_src", {k: v for k, v in payload.items() if k not in reserved} or None)
        set_(self, "_raw_src", payload)
        set_(self, "_claims", None)
        set_(self, "_raw", None)
        return self

    @property
    def claims(self) -> Mapping[str, Any]:
        """Custom claims attached at creation, frozen (empty when none)."""
        frozen = self._claims
        if frozen is None:
            frozen = freeze(self._claims_src) if self._claims_src else EMPTY
            object.__setattr__(self, "_claims", frozen)
        return frozen

    @property
    def raw(self) -> Mapping[str, Any]:
        """The verified JWT payload or Backend API answer, frozen."""
        frozen = self._raw
        if frozen is None:
            frozen = freeze(self._raw_src) if self._raw_src else EMPTY
            object.__setattr__(self, "_raw", frozen)
        return frozen

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("MachineCredential is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("MachineCredential is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MachineCredential):
            return NotImplemented
        fields = ("token_type", "id", "subject", "scopes", "name", "client_id", "expires_at", "format")
        return all(getattr(self, n) == getattr(other, n) for n in fields) and self.claims == other.claims

    def __hash__(self) -> int:
        return hash((self.token_type, self.id, self.subject))

    @property
    def user_id(self) -> str | None:
        """The subject when it is a user (``user_...``): API keys and OAuth tokens of users."""
        return self.subject if self.subject.startswith("user_") else None

    @property
    def org_id(self) -> str | None:
        """The subject when it is an organization (``org_...``): organization API keys."""
        return self.subject if self.subject.startswith("org_") else None

    @property
    def org_role(self) -> None:
        """Always ``None``: a machine credential has no organization role (as a session may)."""
        return None

    @property
    def org_permissions(self) -> tuple[str, ...]:
        """Always empty: a machine credential has no organization permissions."""
        return ()

    @property
    def machine_id(self) -> str | None:
        """The subject when it is a machine (``mch_...``): M2M tokens."""
        return self.subject if self.subject.startswith("mch_") else None

    def has(
        self,
        *,
        scope: str | None = None,
        role: str | None = None,
        permission: str | None = None,
        feature: str | None = None,
        plan: str | None = None,
        reverification: object = None,
    ) -> bool:
        """``has(scope="read:orders")``: the credential was granted that scope.

        The other keywords mirror [`Session.has`][clerkguard.Session.has]
        so the same rules can be applied to either; a machine credential has
        no role, permission, feature, plan or reverification, so asking for
        any of them is False (deny). With no keyword at all: False.
        """
        if role is not None or permission is not None or feature is not None or plan is not None:
            return False
        if reverification is not None or scope is None:
            return False
        return scope in self.scopes

    def __repr__(self) -> str:
        # Never the token; the id and subject are identifiers, not secrets.
        return (
            f"MachineCredential(token_type={self.token_type!r}, id={self.id!r}, "
            f"subject={self.subject!r}, format={self.format!r})"
        )


Credential: TypeAlias = Session | MachineCredential
"""A verified credential of any kind: a [`Session`][clerkguard.Session] or a
[`MachineCredential`][clerkguard.MachineCredential].

Annotate with it where a route accepts several kinds (``accepts_token=...``);
``credential.token_type == "session_token"`` narrows it to a ``Session`` for
type checkers, anything else to a ``MachineCredential``. A real union at run
time too: ``isinstance(x, Credential)`` works.
"""
