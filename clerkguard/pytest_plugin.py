"""pytest fixtures for testing apps protected by clerkguard.

Registered automatically (entry point ``pytest11``) when clerkguard is installed:

* ``clerk_issuer`` -- a started :class:`~clerkguard.testing.LocalIssuer`
  (one per test session; faults and key rotations are reset for each test);
* ``clerk_auth`` -- a :class:`~clerkguard.ClerkAuth` for that issuer, fresh
  per test and closed afterwards;
* ``clerk_token`` -- a factory: ``clerk_token(org_role="admin")`` mints a token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .auth import ClerkAuth
from .testing import Fault, LocalIssuer


@pytest.fixture(scope="session")
def _clerk_issuer_server() -> Iterator[LocalIssuer]:
    issuer = LocalIssuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture
def clerk_issuer(_clerk_issuer_server: LocalIssuer) -> Iterator[LocalIssuer]:
    """A running local issuer, shared by the session but reset for each test.

    Faults, ``jwks_override``, the request count and key rotations
    (``rotate()``, ``extra_keys``) a test made are undone before the next one.
    """
    issuer = _clerk_issuer_server
    key, kid, extra = issuer.key, issuer.kid, list(issuer.extra_keys)
    issuer.set_fault(Fault())
    issuer.jwks_override = None
    issuer.reset_count()
    yield issuer
    issuer.set_fault(Fault())
    issuer.jwks_override = None
    issuer.key, issuer.kid, issuer.extra_keys = key, kid, extra


@pytest.fixture
def clerk_auth(clerk_issuer: LocalIssuer) -> Iterator[ClerkAuth]:
    """A ``ClerkAuth`` that fetches keys from ``clerk_issuer`` over loopback."""
    auth = clerk_issuer.auth()
    yield auth
    auth.close()


@pytest.fixture
def clerk_token(clerk_issuer: LocalIssuer) -> Callable[..., str]:
    """``clerk_token(**claims)`` mints a session token from ``clerk_issuer``."""

    def mint(**options: Any) -> str:
        return clerk_issuer.mint(**options)

    return mint
