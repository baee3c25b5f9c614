"""The verified result of a Clerk session token: [`Session`][clerkguard.session.Session].

Both session-token versions are decoded into one shape:

* v1 carries ``org_id``, ``org_role`` (``org:admin``), ``org_slug`` and
  ``org_permissions`` (a list);
* v2 (``"v": 2``) carries ``o`` (``id``, ``rol``, ``slg``, ``per``, ``fpm``),
  ``fea`` (features) and ``pla`` (plans); permissions are decoded from the
  feature/permission bitmask exactly as Clerk's JavaScript SDK does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypedDict

from ._frozen import freeze, thaw

__all__ = ["REVERIFICATION_PRESETS", "Reverification", "Session", "decode_org_permissions"]


class Reverification(TypedDict):
    """A custom reverification requirement for [`Session.has`][clerkguard.session.Session.has]."""

    level: Literal["first_factor", "second_factor", "multi_factor"]
    after_minutes: int


#: Clerk's named reverification presets.
REVERIFICATION_PRESETS: Mapping[str, Reverification] = MappingProxyType(
    {
        "strict_mfa": {"level": "multi_factor", "after_minutes": 10},
        "strict": {"level": "second_factor", "after_minutes": 10},
        "moderate": {"level": "second_factor", "after_minutes": 60},
        "lax": {"level": "second_factor", "after_minutes": 1440},
    }
)

# Scopes of `fea`/`pla` entries, as Clerk's `splitByScope` reads them.
_ORG_SCOPES = frozenset({"o", "ou", "uo"})
_USER_SCOPES = frozenset({"u", "ou", "uo"})
# Scope names a caller may write in `has(feature=...)` / `has(plan=...)`.
_WANTED_ORG = frozenset({"org", "o", "organization"})
_WANTED_USER = frozenset({"user", "u"})


def _split_csv(value: object) -> list[str]:
    if not isinstance(value, str):
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def _scoped_entries(claim: object) -> list[tuple[str, str]] | None:
    """``scope:name`` entries of a ``fea``/``pla`` claim; ``None`` when malformed.

    Like Clerk's ``splitByScope``: comma-split, trimmed, split at the first
    ``:``. Clerk throws on an entry without a colon (an empty one included);
    here the whole claim is then unusable, so it grants nothing.
    """
    if not isinstance(claim, str):
        return None
    if not claim:
        return []
    entries = []
    for part in claim.split(","):
        scope, sep, name = part.strip().partition(":")
        if not sep:
            return None
        entries.append((scope, name))
    return entries


def _mask_bits(text: str, width: int) -> int:
    """The low ``width`` bits of the decimal ``text``; 0 unless it is all ASCII digits."""
    if not text.isascii() or not text.isdigit() or width <= 0:
        return 0
    # 10**width is a multiple of 2**width, so the low `width` bits depend only
    # on the last `width` digits: no huge integers, however long the mask.
    try:
        return int(text[-width:])
    except ValueError:  # beyond the interpreter's int-conversion digit limit
        return 0


def decode_org_permissions(features: object, permissions: object, masks: object) -> tuple[str, ...]:
    """Decode v2 ``fea`` / ``o.per`` / ``o.fpm`` into ``org:feature:permission`` strings.

    For org feature *i* (scope ``o``, ``ou`` or ``uo``, in ``fea`` order) and
    bit *j* of the decimal mask ``fpm[i]`` (least significant first,
    *j* < len(per)), grant ``org:{feature}:{per[j]}``, as Clerk's
    ``buildOrgPermissions`` does. A mask that is not all digits grants
    nothing but keeps its place; a malformed ``fea`` grants nothing at all.
    An empty feature or permission name keeps its place and grants nothing.
    """
    entries = _scoped_entries(features)
    if not entries or not isinstance(permissions, str) or not isinstance(masks, str):
        return ()
    if not permissions or not masks:
        return ()
    org_features = [name for scope, name in entries if scope in _ORG_SCOPES]
    # Positions matter: empty entries are kept, never compacted away.
    per = [p.strip() for p in permissions.split(",")]
    fpm = [m.strip() for m in masks.split(",")]
    granted: list[str] = []
    for feature, mask_text in zip(org_features, fpm, strict=False):  # extra masks grant nothing
        mask = _mask_bits(mask_text, len(per))
        if not mask or not feature:
            continue
        for j, perm in enumerate(per):
            if perm and mask >> j & 1:
                granted.append(f"org:{feature}:{perm}")
    return tuple(granted)


def _scoped(claim: object) -> tuple[frozenset[str], frozenset[str]] | None:
    """Split a ``fea``/``pla`` claim into (org names, user names); ``None`` when malformed."""
    entries = _scoped_entries(claim)
    if entries is None:
        return None
    org = frozenset(name for scope, name in entries if scope in _ORG_SCOPES)
    user = frozenset(name for scope, name in entries if scope in _USER_SCOPES)
    return org, user


def _factor_age(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= -1


def _with_org_prefix(value: str) -> str:
    # Clerk's prefixWithOrg: any run of leading "org:" becomes exactly one.
    while value.startswith("org:"):
        value = value[4:]
    return f"org:{value}"


# Every refresh of one user's session carries the same fea/pla/o strings, so
# what is derived from them is remembered. The values are pure functions of
# those strings (shared safely by every instance and thread); bounded, and
# cleared when full. Only exact strings are keys: nothing else compares equal.
_DERIVED_MAX = 1024
_derived: dict[tuple[str, ...], tuple[str, ...]] = {}


def _remember_derived(key: tuple[str, ...], value: tuple[str, ...]) -> tuple[str, ...]:
    if len(_derived) >= _DERIVED_MAX:
        _derived.clear()
    _derived[key] = value
    return value


def _org_permissions(features: object, permissions: object, masks: object) -> tuple[str, ...]:
    """`decode_org_permissions`, remembered for string claims."""
    if type(features) is not str or type(permissions) is not str or type(masks) is not str:
        return decode_org_permissions(features, permissions, masks)
    key = ("per", features, permissions, masks)
    found = _derived.get(key)
    if found is not None:
        return found
    return _remember_derived(key, decode_org_permissions(features, permissions, masks))


def _csv_entries(claim: object) -> tuple[str, ...]:
    """The trimmed, non-empty comma-separated entries of ``claim``, remembered."""
    if type(claim) is not str:
        return tuple(_split_csv(claim))
    key = ("csv", claim)
    found = _derived.get(key)
    if found is not None:
        return found
    return _remember_derived(key, tuple(_split_csv(claim)))


_OrgFields = tuple[str | None, str | None, str | None, tuple[str, ...]]


def _decode_org(claims: Mapping[str, Any], version: int) -> _OrgFields:
    """(org_id, org_role, org_slug, org_permissions) of v1 or v2 claims."""
    if version == 2:
        org = claims.get("o")
        if not isinstance(org, dict) or not isinstance(org.get("id"), str) or not org["id"]:
            return (None, None, None, ())
        rol = org.get("rol")
        slg = org.get("slg")
        return (
            org["id"],
            _with_org_prefix(rol) if isinstance(rol, str) and rol else None,
            slg if isinstance(slg, str) else None,
            _org_permissions(claims.get("fea"), org.get("per"), org.get("fpm")),
        )
    org_id = claims.get("org_id")
    if not isinstance(org_id, str) or not org_id:
        return (None, None, None, ())
    role = claims.get("org_role")
    slug = claims.get("org_slug")
    perms = claims.get("org_permissions")
    return (
        org_id,
        _with_org_prefix(role) if isinstance(role, str) and role else None,
        slug if isinstance(slug, str) else None,
        tuple(p for p in perms if isinstance(p, str)) if isinstance(perms, list) else (),
    )


_ORG_UNSET: Any = object()


class Session:
    """A verified Clerk session. Immutable; holds claims, never the token.

    Built by `ClerkAuth.verify <clerkguard.ClerkAuth.verify>` (or
    [`from_claims`][clerkguard.session.Session.from_claims]). Only the handful of fields every request needs
    are set up front; organization, permission and feature data are decoded the first time they are read, so
    verifying a token costs little more than its signature check.

    Attributes:
        user_id: The ``sub`` claim (``user_...``).
        session_id: The ``sid`` claim (``sess_...``).
        issuer: ``iss``.
        expires_at: ``exp`` (Unix seconds).
        issued_at: ``iat`` (Unix seconds).
        version: Session-token version (1 or 2).
        token_type: Always ``"session_token"``; a
            [`MachineCredential`][clerkguard.MachineCredential] names its machine kind here.
    """

    __slots__ = (
        "_claims",
        "_org",
        "_raw",
        "expires_at",
        "issued_at",
        "issuer",
        "session_id",
        "user_id",
        "version",
    )

    #: The kind of credential (``MachineCredential`` says which machine kind).
    token_type: ClassVar[Literal["session_token"]] = "session_token"

    _raw: dict[str, Any]
    _claims: Mapping[str, Any] | None
    _org: Any
    user_id: str
    session_id: str
    issuer: str
    expires_at: float
    issued_at: float
    version: int

    def __init__(self) -> None:
        raise TypeError("build a Session with Session.from_claims(claims)")

    @classmethod
    def _own(cls, claims: dict[str, Any]) -> Session:
        """Wrap verified claims without copying; the caller gives up ``claims``."""
        self = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(self, "_raw", claims)
        setattr_(self, "_claims", None)
        setattr_(self, "_org", _ORG_UNSET)
        setattr_(self, "user_id", claims["sub"])
        setattr_(self, "session_id", claims["sid"])
        setattr_(self, "issuer", claims["iss"])
        setattr_(self, "expires_at", claims["exp"])
        setattr_(self, "issued_at", claims["iat"])
        setattr_(self, "version", 2 if claims.get("v") == 2 else 1)
        return self

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Session:
        """Build a session from already verified claims (v1 or v2).

        The claims are copied (deeply): later changes to ``claims`` do not
        reach the session.
        """
        return cls._own(thaw(claims))

    def __setattr__(self, name: str, value: object) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash((self.user_id, self.session_id, self.expires_at, self.issued_at))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Session.from_claims, (self._raw,))

    # -- lazily decoded fields ---------------------------------------------------
    @property
    def claims(self) -> Mapping[str, Any]:
        """Every claim, read-only all the way down."""
        frozen = self._claims
        if frozen is None:
            frozen = freeze(self._raw)
            object.__setattr__(self, "_claims", frozen)
        return frozen

    def _org_fields(self) -> _OrgFields:
        org_fields = self._org
        if org_fields is _ORG_UNSET:
            org_fields = _decode_org(self._raw, self.version)
            object.__setattr__(self, "_org", org_fields)
        return org_fields  # type: ignore[no-any-return]

    @property
    def org_id(self) -> str | None:
        """Active organization id, or ``None``."""
        return self._org_fields()[0]

    @property
    def org_role(self) -> str | None:
        """Active organization role, always ``org:``-prefixed."""
        return self._org_fields()[1]

    @property
    def org_slug(self) -> str | None:
        """Active organization slug."""
        return self._org_fields()[2]

    @property
    def org_permissions(self) -> tuple[str, ...]:
        """Permissions in the active organization (v2: decoded from ``fea``/``per``/``fpm``)."""
        return self._org_fields()[3]

    @property
    def session_status(self) -> str | None:
        """``sts`` (``active``/``pending``), ``None`` on v1 tokens."""
        sts = self._raw.get("sts")
        return sts if isinstance(sts, str) else None

    @property
    def authorized_party(self) -> str | None:
        """``azp`` (the frontend origin), or ``None``."""
        azp = self._raw.get("azp")
        return azp if isinstance(azp, str) else None

    @property
    def actor(self) -> Mapping[str, Any] | None:
        """The ``act`` claim when an admin impersonates the user, read-only."""
        act = self.claims.get("act")
        return act if isinstance(act, Mapping) else None

    @property
    def factor_verification_age(self) -> tuple[int, int] | None:
        """``fva``: minutes since first- and second-factor verification (``-1`` = not set up)."""
        fva = self._raw.get("fva")
        # Minutes, or -1 for a factor group that is not set up (Clerk's isValidFactorAge).
        if isinstance(fva, list) and len(fva) == 2 and _factor_age(fva[0]) and _factor_age(fva[1]):
            return (fva[0], fva[1])
        return None

    @property
    def features(self) -> tuple[str, ...]:
        """Raw feature entries from ``fea`` (``o:dashboard``, ``u:beta``)."""
        return _csv_entries(self._raw.get("fea"))

    @property
    def plans(self) -> tuple[str, ...]:
        """Raw plan entries from ``pla`` (``o:pro``, ``u:free``)."""
        return _csv_entries(self._raw.get("pla"))

    @property
    def plan(self) -> str | None:
        """The first plan entry's name (``o:pro`` -> ``pro``), or ``None``."""
        if not self.plans:
            return None
        return self.plans[0].partition(":")[2] or None

    @property
    def is_impersonated(self) -> bool:
        """True when an actor (``act``) signed in as this user."""
        return self.actor is not None

    def has(
        self,
        *,
        role: str | None = None,
        permission: str | None = None,
        feature: str | None = None,
        plan: str | None = None,
        reverification: str | Reverification | None = None,
        scope: str | None = None,
    ) -> bool:
        """Clerk's ``has()``: True only when *every* given condition holds.

        ``role``/``permission`` need an active organization (``admin`` equals
        ``org:admin``). ``feature``/``plan`` accept ``org:name`` (also
        ``o:``/``organization:``), ``user:name`` (also ``u:``) or a bare
        ``name`` (either scope), as Clerk does. ``reverification`` is a preset name
        (``strict_mfa``, ``strict``, ``moderate``, ``lax``) or a
        `Reverification` dict. With no condition, or with anything
        that cannot be decided (unknown preset, no ``fva`` claim), the answer
        is ``False``. ``scope`` mirrors
        [`MachineCredential.has`][clerkguard.MachineCredential.has] so one rule
        serves routes that accept several kinds: a session has no scopes, so
        asking for one is ``False``.
        """
        conditions = (role, permission, feature, plan, reverification)
        if scope is not None or all(c is None for c in conditions):
            return False
        if role is not None:
            if not self.org_id or not self.org_role or not isinstance(role, str) or not role:
                return False
            if _with_org_prefix(role) != _with_org_prefix(self.org_role):
                return False
        if permission is not None:
            if not self.org_id or not isinstance(permission, str) or not permission:
                return False
            if _with_org_prefix(permission) not in self.org_permissions:
                return False
        if feature is not None and not self._scoped_has(self.claims.get("fea"), feature):
            return False
        if plan is not None and not self._scoped_has(self.claims.get("pla"), plan):
            return False
        return reverification is None or self._reverified(reverification)

    @staticmethod
    def _scoped_has(claim: object, wanted: object) -> bool:
        if not isinstance(wanted, str) or not wanted:
            return False
        scoped = _scoped(claim)
        if scoped is None:
            return False
        org, user = scoped
        scope, sep, name = wanted.partition(":")
        if not sep:
            return wanted in org or wanted in user
        if not name:
            return False
        if scope in _WANTED_ORG:
            return name in org
        if scope in _WANTED_USER:
            return name in user
        return False

    def _reverified(self, requirement: object) -> bool:
        if isinstance(requirement, str):
            preset = REVERIFICATION_PRESETS.get(requirement)
            if preset is None:
                return False
            requirement = preset
        if not isinstance(requirement, Mapping):
            return False
        level = requirement.get("level")
        after = requirement.get("after_minutes")
        if not isinstance(after, int) or isinstance(after, bool) or after <= 0:
            return False
        if self.factor_verification_age is None:
            return False
        first, second = self.factor_verification_age
        first_ok = first != -1 and first < after
        second_ok = second != -1 and second < after
        if level == "first_factor":
            return first_ok
        if level == "second_factor":
            return second_ok if second != -1 else first_ok
        if level == "multi_factor":
            return first_ok if second == -1 else first_ok and second_ok
        return False

    def __repr__(self) -> str:
        org = f", org_id={self.org_id!r}, org_role={self.org_role!r}" if self.org_id else ""
        return f"Session(user_id={self.user_id!r}, session_id={self.session_id!r}{org})"
