"""Fixtures of the JWKS shell tests: a real loopback JWKS server per module, both fetchers.

Request counts are exact, so every module gets a :class:`LocalIssuer` of its
own (the plugin's session-wide ``clerk_issuer`` may be polled by refreshers of
other tests' instances).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clerkguard import AuthError, ClerkAuth, Session
from clerkguard.testing import Fault, LocalIssuer

from .support import MODES, Check, Verify


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    """This module's JWKS server on loopback."""
    with LocalIssuer() as server:
        yield server


@pytest.fixture(autouse=True)
def _healthy_issuer(issuer: LocalIssuer) -> Iterator[None]:
    issuer.set_fault(Fault())
    issuer.jwks_override = None
    issuer.reset_count()
    yield
    issuer.set_fault(Fault())
    issuer.jwks_override = None


@pytest.fixture
def make_auth(issuer: LocalIssuer) -> Iterator[Callable[..., ClerkAuth]]:
    """``make_auth(**options)``: a ClerkAuth on ``issuer`` (short timeout), closed afterwards."""
    made: list[ClerkAuth] = []

    def make(**options: Any) -> ClerkAuth:
        options.setdefault("http_timeout", 2.0)
        auth = issuer.auth(**options)
        made.append(auth)
        return auth

    yield make
    for auth in made:
        auth.close()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """``sync``: ``verify`` in a thread (thread fetcher); ``async``: ``averify`` (task fetcher)."""
    param: str = request.param
    return param


@pytest.fixture
def verify(mode: str) -> Verify:
    """Verification through this test's fetcher."""

    async def run(auth: ClerkAuth, token: str) -> Session:
        if mode == "sync":
            return await asyncio.to_thread(auth.verify, token)
        return await auth.averify(token)

    return run


@pytest.fixture
def check(verify: Verify) -> Check:
    """Verification summarised as ``"ok"`` or ``"<status> <reason>"``."""

    async def run(auth: ClerkAuth, token: str) -> str:
        try:
            await verify(auth, token)
        except AuthError as exc:
            return f"{exc.status} {exc.reason}"
        return "ok"

    return run
