"""Composable authorization rules for ``require_auth(authorize=...)``.

Each rule is an ``authorize(session, request)`` callable that returns exactly
``True`` or ``False``; combine them with :func:`all_of` / :func:`any_of`::

    require_auth(authorize=any_of(has_role("admin"), has_permission("org:billing:manage")))

``require_auth(role=..., permission=..., feature=..., plan=...,
reverification=..., org=...)`` builds the same rules for you.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .session import Reverification, Session

__all__ = [
    "Rule",
    "all_of",
    "any_of",
    "has_feature",
    "has_permission",
    "has_plan",
    "has_role",
    "in_org",
    "reverified",
    "rules_from",
]

Rule = Callable[[Session, Any], bool]


class _Rule:
    """A named, pure rule (cheap, so it is called inline, even on an event loop)."""

    __slots__ = ("_check", "_name")

    def __init__(self, name: str, check: Callable[[Session, Any], bool]) -> None:
        self._name = name
        self._check = check

    def __call__(self, session: Session, request: Any = None) -> bool:
        return self._check(session, request) is True

    def __repr__(self) -> str:
        return self._name


def has_role(role: str) -> Rule:
    """The active organization role is ``role`` (``admin`` == ``org:admin``)."""
    return _Rule(f"has_role({role!r})", lambda s, _: s.has(role=role))


def has_permission(permission: str) -> Rule:
    """The active organization grants ``permission`` (``org:feature:perm``)."""
    return _Rule(f"has_permission({permission!r})", lambda s, _: s.has(permission=permission))


def has_feature(feature: str) -> Rule:
    """The user or organization has ``feature`` (``org:x``, ``user:x`` or ``x``)."""
    return _Rule(f"has_feature({feature!r})", lambda s, _: s.has(feature=feature))


def has_plan(plan: str) -> Rule:
    """The user or organization is on ``plan`` (``org:x``, ``user:x`` or ``x``)."""
    return _Rule(f"has_plan({plan!r})", lambda s, _: s.has(plan=plan))


def reverified(requirement: str | Reverification = "strict") -> Rule:
    """The user verified recently enough (Clerk presets or a custom dict)."""
    return _Rule(f"reverified({requirement!r})", lambda s, _: s.has(reverification=requirement))


def in_org(org: str) -> Rule:
    """The active organization's id or slug is ``org``."""
    return _Rule(f"in_org({org!r})", lambda s, _: s.org_id is not None and org in (s.org_id, s.org_slug))


def _allows(rule: Rule, session: Session, request: Any) -> bool:
    return rule(session, request) is True


def all_of(*rules: Rule) -> Rule:
    """Allow only when every rule returns exactly ``True`` (sync rules only)."""
    if not rules:
        raise ValueError("all_of() needs at least one rule")
    name = f"all_of({', '.join(map(repr, rules))})"
    return _Rule(name, lambda s, r: all(_allows(rule, s, r) for rule in rules))


def any_of(*rules: Rule) -> Rule:
    """Allow when at least one rule returns exactly ``True`` (sync rules only)."""
    if not rules:
        raise ValueError("any_of() needs at least one rule")
    name = f"any_of({', '.join(map(repr, rules))})"
    return _Rule(name, lambda s, r: any(_allows(rule, s, r) for rule in rules))


def is_inline(rule: object) -> bool:
    """True for clerkguard's own pure rules."""
    return isinstance(rule, _Rule)


def rules_from(
    *,
    role: str | None = None,
    permission: str | None = None,
    feature: str | None = None,
    plan: str | None = None,
    reverification: str | Reverification | None = None,
    org: str | None = None,
) -> list[Rule]:
    """The rules the ``require_auth`` shorthand keywords stand for."""
    rules: list[Rule] = []
    if role is not None:
        rules.append(has_role(role))
    if permission is not None:
        rules.append(has_permission(permission))
    if feature is not None:
        rules.append(has_feature(feature))
    if plan is not None:
        rules.append(has_plan(plan))
    if reverification is not None:
        rules.append(reverified(reverification))
    if org is not None:
        rules.append(in_org(org))
    return rules
