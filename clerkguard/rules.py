"""Composable authorization rules for ``require_auth(authorize=...)``.

Each rule is an ``authorize(session, request)`` callable; combine rules (and
your own callables, sync or async) with [`all_of`][clerkguard.rules.all_of] /
[`any_of`][clerkguard.rules.any_of]:

    require_auth(authorize=any_of(has_role("admin"), has_permission("org:billing:manage")))

``require_auth(role=..., permission=..., feature=..., plan=...,
reverification=..., org=..., scope=...)`` builds the same rules for you.

The built-in rules are pure and cheap, so guards call them inline, even on an
event loop. [`all_of`][clerkguard.rules.all_of] and [`any_of`][clerkguard.rules.any_of] stay synchronous while
their members are, and become awaitable from the first member that returns an awaitable (an ``async def``
rule), so a sync rule set costs no event loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
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
    "has_scope",
    "in_org",
    "is_pure",
    "reverified",
    "rules_from",
]

#: ``rule(session, request)``: exactly ``True`` allows (may return an awaitable).
Rule = Callable[[Session, Any], "bool | Awaitable[bool]"]


class _Rule:
    """A named rule; ``repr`` shows what it checks (handy in logs and tests)."""

    __slots__ = ("_check", "_name", "pure")

    def __init__(
        self, name: str, check: Callable[[Session, Any], bool | Awaitable[bool]], *, pure: bool = True
    ) -> None:
        self._name = name
        self._check = check
        #: A built-in check (or a combination of only such): synchronous, no side
        #: effects, the same answer for the same session. Guards may evaluate it
        #: early (their no-await shortcut) and again on the full path.
        self.pure = pure

    def __call__(self, session: Session, request: Any = None) -> bool | Awaitable[bool]:
        result: object = self._check(session, request)
        if result is True or result is False:  # the common case, without inspect's cost
            return result
        if inspect.isawaitable(result):
            return result
        return False  # defensive: anything else denies

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


def has_scope(scope: str) -> Rule:
    """A machine credential was granted ``scope`` (OAuth scopes, M2M and API key scopes).

    Sessions carry no scopes: on a route that also accepts session tokens
    they are denied by this rule.
    """
    return _Rule(f"has_scope({scope!r})", lambda s, _: s.has(scope=scope))


def in_org(org: str) -> Rule:
    """The active organization's id or slug is ``org``."""
    return _Rule(f"in_org({org!r})", lambda s, _: s.org_id is not None and org in (s.org_id, s.org_slug))


def _combine(rules: tuple[Rule, ...], stop_on: bool) -> Callable[[Session, Any], bool | Awaitable[bool]]:
    """Evaluate ``rules`` in order until one returns ``stop_on`` (short-circuit).

    ``all_of`` stops on the first non-``True`` (deny), ``any_of`` on the first
    ``True`` (allow). Only exactly ``True`` counts as allowing: ``1`` or
    ``"yes"`` do not.
    """

    def check(session: Session, request: Any) -> bool | Awaitable[bool]:
        for index, rule in enumerate(rules):
            result = rule(session, request)
            if result is not True and result is not False and inspect.isawaitable(result):
                return _continue_async(result, rules[index + 1 :], session, request, stop_on)
            if (result is True) is stop_on:
                return stop_on
        return not stop_on

    return check


async def _continue_async(
    pending: Awaitable[Any], rest: tuple[Rule, ...], session: Session, request: Any, stop_on: bool
) -> bool:
    if ((await pending) is True) is stop_on:
        return stop_on
    for rule in rest:
        result = rule(session, request)
        if inspect.isawaitable(result):
            result = await result
        if (result is True) is stop_on:
            return stop_on
    return not stop_on


def all_of(*rules: Rule) -> Rule:
    """Allow only when every rule returns exactly ``True`` (stops at the first denial)."""
    if not rules:
        raise ValueError("all_of() needs at least one rule")
    _check_callable(rules)
    return _Rule(f"all_of({', '.join(map(repr, rules))})", _combine(rules, stop_on=False), pure=_pure(rules))


def any_of(*rules: Rule) -> Rule:
    """Allow when at least one rule returns exactly ``True`` (stops at the first).

    A rule that raises is not skipped: the exception propagates, and a guard
    turns it into a 403 (fail closed).
    """
    if not rules:
        raise ValueError("any_of() needs at least one rule")
    _check_callable(rules)
    return _Rule(f"any_of({', '.join(map(repr, rules))})", _combine(rules, stop_on=True), pure=_pure(rules))


def is_pure(rule: object) -> bool:
    """Whether ``rule`` is built from the built-in rules only (see the module doc).

    Such a rule answers ``True``/``False`` synchronously and has no side
    effects, so a guard may decide a cached request with it without an await.
    A rule of your own (or a combination holding one) is not.
    """
    return isinstance(rule, _Rule) and rule.pure


def _pure(rules: tuple[Any, ...]) -> bool:
    return all(is_pure(rule) for rule in rules)


def _check_callable(rules: tuple[Any, ...]) -> None:
    for rule in rules:
        if not callable(rule):
            raise TypeError(f"rules must be callables rule(session, request), got {type(rule).__name__}")


def rules_from(
    *,
    role: str | None = None,
    permission: str | None = None,
    feature: str | None = None,
    plan: str | None = None,
    reverification: str | Reverification | None = None,
    org: str | None = None,
    scope: str | None = None,
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
    if scope is not None:
        rules.append(has_scope(scope))
    return rules
