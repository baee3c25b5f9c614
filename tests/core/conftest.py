"""Fixtures of the core tests, built on the plugin's ``clerk_issuer`` (a real loopback JWKS server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clerkguard import ClerkAuth
from clerkguard.testing import LocalIssuer

from .support import MODES, FrozenClock, Verifier


@pytest.fixture
def clock() -> FrozenClock:
    """The time every token of a test is minted at and judged at (until moved)."""
    return FrozenClock()


@pytest.fixture
def mint(clerk_issuer: LocalIssuer, clock: FrozenClock) -> Callable[..., str]:
    """``mint(**options)``: :meth:`LocalIssuer.mint` with claim times taken from ``clock``."""

    def mint(**options: Any) -> str:
        options.setdefault("issued_at", clock.now)
        return clerk_issuer.mint(**options)

    return mint


@pytest.fixture
def make_auth(clerk_issuer: LocalIssuer, clock: FrozenClock) -> Iterator[Callable[..., ClerkAuth]]:
    """``make_auth(**options)``: a ClerkAuth for ``clerk_issuer`` judging at ``clock``; closed afterwards."""
    made: list[ClerkAuth] = []

    def make(**options: Any) -> ClerkAuth:
        options.setdefault("clock", clock)
        auth = clerk_issuer.auth(**options)
        made.append(auth)
        return auth

    yield make
    for auth in made:
        auth.close()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """``verify`` (sync) or ``averify`` (async): every rule is pinned through both."""
    param: str = request.param
    return param


@pytest.fixture
def make_verifier(make_auth: Callable[..., ClerkAuth], mode: str) -> Callable[..., Verifier]:
    """``make_verifier(**options)``: a :class:`Verifier` in this test's mode."""

    def make(**options: Any) -> Verifier:
        return Verifier(make_auth(**options), mode)

    return make


@pytest.fixture
def verify(make_verifier: Callable[..., Verifier]) -> Verifier:
    """A verifier with default options, against the loopback JWKS server."""
    return make_verifier()
