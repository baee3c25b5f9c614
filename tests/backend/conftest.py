"""Fixtures of the Backend API user tests: one loopback issuer + fake Backend API per module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clerkguard import ClerkAuth
from clerkguard.testing import Fault, LocalIssuer

#: The organization the restricted instances of these tests belong to.
ORG_ID = "org_2acmeacmeacmeacmeacmeacme0"
ORG_SLUG = "acme"


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    """This module's issuer: JWKS and the fake Backend API on loopback (exact request counts)."""
    with LocalIssuer() as server:
        yield server


@pytest.fixture(autouse=True)
def _healthy(issuer: LocalIssuer) -> Iterator[None]:
    issuer.set_fault(Fault())
    issuer.reset_backend()
    yield
    issuer.set_fault(Fault())
    issuer.set_backend_fault(Fault())


@pytest.fixture
def make_auth(issuer: LocalIssuer) -> Iterator[Callable[..., ClerkAuth]]:
    """``make_auth(**options)``: a ClerkAuth that can reach the fake Backend API, closed afterwards."""
    made: list[ClerkAuth] = []

    def make(**options: Any) -> ClerkAuth:
        options.setdefault("http_timeout", 2.0)
        auth = issuer.machine_auth(**options)
        made.append(auth)
        return auth

    yield make
    for auth in made:
        auth.close()
