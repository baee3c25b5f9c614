"""The Session model: v1/v2 decoding and ``has()``, pinned to Clerk's JavaScript SDK.

Reference: ``clerk/javascript`` ``packages/shared/src/jwtPayloadParser.ts``
(``splitByScope``, ``parsePermissions``, ``buildOrgPermissions``) and
``packages/shared/src/authorization.ts`` (``createCheckAuthorization``).
Where this library is stricter than Clerk it is only ever by denying.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from clerkguard import Session
from clerkguard.session import REVERIFICATION_PRESETS, decode_org_permissions

from .support import T0, Verifier


def claims_v2(**changes: Any) -> dict[str, Any]:
    """The design section 3 example payload, with ``changes`` applied."""
    claims: dict[str, Any] = {
        "azp": "https://app.example.com",
        "exp": T0 + 60,
        "fva": [0, -1],
        "iat": T0,
        "iss": "https://clerk.example.com",
        "jti": "b1a2c3",
        "nbf": T0 - 10,
        "sid": "sess_2abc",
        "sts": "active",
        "sub": "user_2abc",
        "v": 2,
        "fea": "o:dashboard,o:teams",
        "pla": "o:pro",
        "o": {"id": "org_2abc", "rol": "admin", "slg": "acme", "per": "manage,read", "fpm": "3,2"},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def claims_v1(**changes: Any) -> dict[str, Any]:
    """A v1 payload with an active organization."""
    claims: dict[str, Any] = {
        "azp": "https://app.example.com",
        "exp": T0 + 60,
        "iat": T0,
        "iss": "https://clerk.example.com",
        "sid": "sess_2abc",
        "sub": "user_2abc",
        "org_id": "org_2abc",
        "org_role": "org:admin",
        "org_slug": "acme",
        "org_permissions": ["org:invoices:read", "org:invoices:write"],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def session_v2(**changes: Any) -> Session:
    return Session.from_claims(claims_v2(**changes))


def with_org(**org: Any) -> Session:
    return session_v2(o={"id": "org_2abc", "rol": "admin", **org})


# -- v2 decoding ----------------------------------------------------------------------


def test_design_example_decodes_to_exactly_three_permissions() -> None:
    session = session_v2()
    assert session.org_permissions == ("org:dashboard:manage", "org:dashboard:read", "org:teams:read")
    assert (session.org_id, session.org_role, session.org_slug) == ("org_2abc", "org:admin", "acme")
    assert session.version == 2
    assert session.session_status == "active"
    assert session.factor_verification_age == (0, -1)
    assert session.features == ("o:dashboard", "o:teams")
    assert session.plans == ("o:pro",)
    assert session.plan == "pro"


@pytest.mark.parametrize(
    ("fea", "per", "fpm", "expected"),
    [
        # Mask bits beyond `per` are ignored.
        ("o:dashboard", "read", "7", ["org:dashboard:read"]),
        ("o:dashboard", "manage,read", "255", ["org:dashboard:manage", "org:dashboard:read"]),
        # Bit j is permission j, least significant first.
        ("o:dashboard", "a,b,c", "5", ["org:dashboard:a", "org:dashboard:c"]),
        ("o:dashboard", "a,b,c", "0", []),
        # More features than masks: the extra features get nothing.
        ("o:dashboard,o:teams,o:billing", "read", "1", ["org:dashboard:read"]),
        # More masks than features: the extra masks grant nothing.
        ("o:dashboard", "read", "1,1,1", ["org:dashboard:read"]),
        # ou/uo are org features too; u: is not, and does not take an org feature's mask.
        (
            "u:beta,o:dashboard,uo:teams,ou:reports",
            "read",
            "1,1,1",
            ["org:dashboard:read", "org:teams:read", "org:reports:read"],
        ),
        ("u:beta,u:gamma", "read", "1,1", []),
        # Unknown scopes are neither org nor user features.
        ("x:beta,o:dashboard", "read", "1", ["org:dashboard:read"]),
        ("org:beta,o:dashboard", "read", "1", ["org:dashboard:read"]),
        # Entries and masks are trimmed.
        (" o:dashboard , o:teams ", " manage , read ", " 1 , 2 ", ["org:dashboard:manage", "org:teams:read"]),
        # A mask with leading zeros or more digits than a machine word is still a decimal.
        (
            "o:dashboard",
            "manage,read",
            "0000000000000000000000000003",
            ["org:dashboard:manage", "org:dashboard:read"],
        ),
        ("o:dashboard", "a,b", "9" * 5000, ["org:dashboard:a", "org:dashboard:b"]),
        ("o:dashboard", "a,b", "18446744073709551618", ["org:dashboard:b"]),
        # An empty permission keeps its position.
        ("o:dashboard", "manage,,read", "4", ["org:dashboard:read"]),
    ],
)
def test_v2_permission_decoding_matches_clerk(fea: str, per: str, fpm: str, expected: list[str]) -> None:
    assert list(decode_org_permissions(fea, per, fpm)) == expected


@pytest.mark.parametrize("mask", ["x", "-1", "3.0", "0x3", "1e1", "", "\u0663", "+3", "3 3"])
def test_non_digit_mask_grants_nothing_but_keeps_its_place(mask: str) -> None:
    granted = decode_org_permissions("o:dashboard,o:teams", "manage,read", f"{mask},2")
    assert granted == ("org:teams:read",)


@pytest.mark.parametrize(
    ("fea", "per", "fpm"),
    [
        (None, "read", "1"),
        ("o:dashboard", None, "1"),
        ("o:dashboard", "read", None),
        ("o:dashboard", "", "1"),
        ("o:dashboard", "read", ""),
        (["o:dashboard"], "read", "1"),
        ("o:dashboard", ["read"], "1"),
        ("o:dashboard", "read", [1]),
        ("o:dashboard", "read", 1),
    ],
)
def test_missing_or_mistyped_inputs_grant_nothing(fea: Any, per: Any, fpm: Any) -> None:
    assert decode_org_permissions(fea, per, fpm) == ()


@pytest.mark.parametrize("fea", ["dashboard,o:teams", "o:dashboard,,o:teams", "o:dashboard,"])
def test_malformed_feature_claim_grants_nothing(fea: str) -> None:
    # Clerk's splitByScope throws on an entry without a scope: nothing is decoded.
    assert decode_org_permissions(fea, "read", "1,1") == ()


def test_empty_feature_name_keeps_its_place() -> None:
    # Clerk would grant "org::read" for the nameless feature; it is skipped here, its mask still consumed.
    assert decode_org_permissions("o:,o:teams", "read,manage", "1,2") == ("org:teams:manage",)


def test_v2_without_an_organization() -> None:
    session = session_v2(o=None, fea="u:beta", pla="u:free")
    assert session.org_id is session.org_role is session.org_slug is None
    assert session.org_permissions == ()


@pytest.mark.parametrize("org", [[], "org_2abc", {"rol": "admin"}, {"id": 5}, {"id": None}])
def test_v2_malformed_organization_is_no_organization(org: Any) -> None:
    session = session_v2(o=org)
    assert session.org_id is None
    assert session.org_permissions == ()
    assert not session.has(role="admin")


def test_v2_role_without_per_or_fpm() -> None:
    session = with_org()
    assert session.org_role == "org:admin"
    assert session.org_permissions == ()


@pytest.mark.parametrize("version", ["2", 2.5, None, 3, True])
def test_only_integer_2_selects_v2_decoding(version: Any) -> None:
    session = Session.from_claims({**claims_v2(), "v": version})
    assert session.version == 1
    assert session.org_id is None  # v1 decoding finds no org_id


# -- v1 decoding ----------------------------------------------------------------------


def test_v1_organization_claims() -> None:
    session = Session.from_claims(claims_v1())
    assert session.version == 1
    assert (session.org_id, session.org_role, session.org_slug) == ("org_2abc", "org:admin", "acme")
    assert session.org_permissions == ("org:invoices:read", "org:invoices:write")
    assert session.session_status is None
    assert session.factor_verification_age is None


def test_v1_role_is_org_prefixed_and_odd_permissions_dropped() -> None:
    session = Session.from_claims(claims_v1(org_role="admin", org_permissions=["org:a:b", 5, None, ["x"]]))
    assert session.org_role == "org:admin"
    assert session.org_permissions == ("org:a:b",)


def test_v1_permissions_that_are_not_a_list_grant_nothing() -> None:
    session = Session.from_claims(claims_v1(org_permissions="org:invoices:read"))
    assert session.org_permissions == ()
    assert not session.has(permission="org:invoices:read")


# -- has(): roles and permissions ------------------------------------------------------


def test_no_condition_is_never_authorized() -> None:
    session = session_v2()
    assert session.has() is False
    assert session.has(role=None, permission=None) is False


@pytest.mark.parametrize("make", [session_v2, lambda: Session.from_claims(claims_v1())])
def test_role_with_or_without_the_org_prefix(make: Callable[[], Session]) -> None:
    session = make()
    assert session.has(role="admin") is True
    assert session.has(role="org:admin") is True
    assert session.has(role="member") is False
    assert session.has(role="org:member") is False
    assert session.has(role="Admin") is False


def test_role_prefix_is_normalised_like_clerk() -> None:
    # Clerk's prefixWithOrg collapses any run of leading "org:" prefixes on both sides.
    assert with_org(rol="org:admin").has(role="admin") is True
    assert session_v2().has(role="org:org:admin") is True


def test_permission_with_or_without_the_org_prefix() -> None:
    session = session_v2()
    assert session.has(permission="org:dashboard:read") is True
    assert session.has(permission="dashboard:read") is True
    assert session.has(permission="org:teams:manage") is False
    assert Session.from_claims(claims_v1()).has(permission="invoices:write") is True


def test_role_and_permission_must_both_hold() -> None:
    session = session_v2()
    assert session.has(role="admin", permission="org:teams:read") is True
    assert session.has(role="admin", permission="org:teams:manage") is False
    assert session.has(role="member", permission="org:teams:read") is False


def test_roles_and_permissions_need_an_organization() -> None:
    # Claims that name a role or permissions but no organization id grant nothing.
    session = session_v2(o=None)
    v1 = Session.from_claims(claims_v1(org_id=None))
    for s in (session, v1):
        assert s.has(role="admin") is False
        assert s.has(permission="org:invoices:read") is False
    assert Session.from_claims(claims_v1(org_id="")).has(role="admin") is False


@pytest.mark.parametrize("value", [1, ["admin"], {"role": "admin"}, b"admin", True, ""])
def test_non_string_or_empty_conditions_are_denied(value: Any) -> None:
    session = session_v2()
    assert session.has(role=value) is False
    assert session.has(permission=value) is False
    assert session.has(feature=value) is False
    assert session.has(plan=value) is False


# -- has(): features and plans ---------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("dashboard", True),
        ("org:dashboard", True),
        ("o:dashboard", True),
        ("organization:dashboard", True),
        ("user:dashboard", False),
        ("u:dashboard", False),
        ("beta", True),
        ("user:beta", True),
        ("u:beta", True),
        ("org:beta", False),
        ("shared", True),
        ("org:shared", True),
        ("user:shared", True),
        ("missing", False),
        ("team:dashboard", False),
        ("org:", False),
    ],
)
def test_feature_scopes(wanted: str, expected: bool) -> None:
    session = session_v2(fea="o:dashboard,u:beta,ou:shared")
    assert session.has(feature=wanted) is expected


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("pro", True),
        ("org:pro", True),
        ("user:pro", False),
        ("free", True),
        ("user:free", True),
        ("gold", False),
    ],
)
def test_plan_scopes(wanted: str, expected: bool) -> None:
    assert session_v2(pla="o:pro,u:free").has(plan=wanted) is expected


@pytest.mark.parametrize(
    "fea", [None, "", 5, ["o:dashboard"], "dashboard", "o:teams,dashboard", "q:dashboard"]
)
def test_features_missing_or_malformed_deny(fea: Any) -> None:
    assert session_v2(fea=fea).has(feature="dashboard") is False


def test_feature_and_plan_must_both_hold() -> None:
    session = session_v2(fea="o:dashboard", pla="o:pro")
    assert session.has(feature="dashboard", plan="pro") is True
    assert session.has(feature="dashboard", plan="enterprise") is False
    assert session.has(feature="reports", plan="pro") is False


# -- has(): reverification -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fva", "expected"),
    [
        # fva = [minutes since first factor, minutes since second factor]; -1 = not set up.
        ([0, -1], {"strict_mfa": True, "strict": True, "moderate": True, "lax": True}),
        ([9, -1], {"strict_mfa": True, "strict": True, "moderate": True, "lax": True}),
        ([10, -1], {"strict_mfa": False, "strict": False, "moderate": True, "lax": True}),
        ([59, -1], {"strict_mfa": False, "strict": False, "moderate": True, "lax": True}),
        ([60, -1], {"strict_mfa": False, "strict": False, "moderate": False, "lax": True}),
        ([1440, -1], {"strict_mfa": False, "strict": False, "moderate": False, "lax": False}),
        ([5, 5], {"strict_mfa": True, "strict": True, "moderate": True, "lax": True}),
        ([5, 20], {"strict_mfa": False, "strict": False, "moderate": True, "lax": True}),
        ([20, 5], {"strict_mfa": False, "strict": True, "moderate": True, "lax": True}),
        ([-1, 5], {"strict_mfa": False, "strict": True, "moderate": True, "lax": True}),
        ([-1, -1], {"strict_mfa": False, "strict": False, "moderate": False, "lax": False}),
    ],
)
def test_reverification_presets(fva: list[int], expected: dict[str, bool]) -> None:
    session = session_v2(fva=fva)
    assert {name: session.has(reverification=name) for name in REVERIFICATION_PRESETS} == expected


@pytest.mark.parametrize(
    ("requirement", "fva", "expected"),
    [
        ({"level": "first_factor", "after_minutes": 1}, [0, -1], True),
        ({"level": "first_factor", "after_minutes": 1}, [1, -1], False),
        ({"level": "first_factor", "after_minutes": 30}, [-1, 0], False),
        ({"level": "second_factor", "after_minutes": 30}, [40, 10], True),
        ({"level": "second_factor", "after_minutes": 30}, [10, 40], False),
        ({"level": "multi_factor", "after_minutes": 30}, [10, 10], True),
        ({"level": "multi_factor", "after_minutes": 30}, [10, 40], False),
        ({"level": "multi_factor", "after_minutes": 30}, [10, -1], True),
        ({"level": "multi_factor", "after_minutes": 30}, [-1, 10], False),
    ],
)
def test_custom_reverification(requirement: dict[str, Any], fva: list[int], expected: bool) -> None:
    assert session_v2(fva=fva).has(reverification=requirement) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "requirement",
    [
        "paranoid",
        "",
        "STRICT",
        {"level": "third_factor", "after_minutes": 10},
        {"level": "first_factor", "after_minutes": 0},
        {"level": "first_factor", "after_minutes": -5},
        {"level": "first_factor", "after_minutes": True},
        {"level": "first_factor", "after_minutes": "10"},
        {"level": "first_factor"},
        {"after_minutes": 10},
        {},
        ["strict"],
        10,
    ],
    ids=repr,
)
def test_undecidable_reverification_is_denied(requirement: Any) -> None:
    assert session_v2(fva=[0, 0]).has(reverification=requirement) is False


@pytest.mark.parametrize(
    "fva",
    [None, [], [0], [0, 0, 0], ["0", 0], [0, None], [True, 0], [-5, 0], [0, -2], [0.5, 0], "0,0"],
    ids=repr,
)
def test_missing_or_malformed_factor_ages_deny_reverification(fva: Any) -> None:
    session = session_v2(fva=fva)
    assert session.factor_verification_age is None
    assert session.has(reverification="lax") is False


def test_reverification_combines_with_other_conditions() -> None:
    session = session_v2(fva=[0, -1])
    assert session.has(role="admin", reverification="strict") is True
    assert session.has(role="member", reverification="strict") is False
    assert session_v2(fva=[100, -1]).has(role="admin", reverification="strict") is False
    assert session_v2(fva=None).has(role="admin", reverification="strict") is False


# -- immutability and secrecy -----------------------------------------------------------


def test_session_is_frozen() -> None:
    session = session_v2()
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.user_id = "user_mallory"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.org_role = "org:admin"  # type: ignore[misc]


def test_claims_are_read_only_all_the_way_down() -> None:
    session = session_v2(act={"sub": "user_admin", "roles": ["a"]})
    with pytest.raises(TypeError):
        session.claims["sub"] = "user_mallory"  # type: ignore[index]
    with pytest.raises(TypeError):
        del session.claims["sub"]  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        session.claims["o"]["rol"] = "admin"
    assert isinstance(session.claims["fva"], tuple)
    assert session.actor is not None
    with pytest.raises(TypeError):
        session.actor["sub"] = "user_mallory"  # type: ignore[index]
    assert session.is_impersonated is True


def test_session_does_not_follow_the_claims_it_was_built_from() -> None:
    claims = claims_v2()
    session = Session.from_claims(claims)
    claims["sub"] = "user_mallory"
    claims["o"]["rol"] = "owner"
    assert session.user_id == "user_2abc"
    assert session.claims["sub"] == "user_2abc"
    assert session.claims["o"]["rol"] == "admin"


async def test_repr_and_fields_never_hold_the_token(verify: Verifier, mint: Callable[..., str]) -> None:
    token = mint(org_role="admin", permissions=["org:dashboard:read"], actor={"sub": "user_admin"})
    session = await verify(token)
    text = repr(session) + str(session)
    for secret in (token, *token.split(".")):
        assert secret not in text
    public = [
        name for name in dir(session) if not name.startswith("_") and not callable(getattr(session, name))
    ]
    assert {"user_id", "org_permissions", "claims", "actor"} <= set(public)
    values = [repr(getattr(session, name)) for name in public]
    assert not any(part in value for value in values for part in token.split("."))
    assert repr(session).startswith("Session(user_id='user_2abcdefghijklmnopqrstuvwxyz'")


# -- round trip through a real token -----------------------------------------------------


async def test_minted_v2_permissions_round_trip(verify: Verifier, mint: Callable[..., str]) -> None:
    wanted = ["org:dashboard:manage", "org:dashboard:read", "org:teams:read"]
    session = await verify(mint(org_role="admin", permissions=wanted, features=["u:beta"], plan="pro"))
    assert sorted(session.org_permissions) == sorted(wanted)
    assert session.has(role="admin", permission="org:teams:read") is True
    assert session.has(feature="user:beta") is True
    assert session.has(plan="pro") is True
    assert session.has(permission="org:teams:manage") is False
