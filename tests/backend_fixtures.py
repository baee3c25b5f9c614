"""Fixtures shared by ``tests/backend`` and ``tests/machine``: a loopback issuer + fake Backend API.

Each of those conftests imports ``issuer`` and ``make_auth`` from here (pytest
registers fixtures a conftest imports) and keeps its own autouse reset, since
the two reset the fake Backend API differently. Importable by name because
the root ``tests/conftest.py`` puts ``tests/`` on ``sys.path`` (rootdir-based
``prepend`` import mode).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clerkguard import ClerkAuth
from clerkguard.testing import LocalIssuer

__all__ = ["issuer", "make_auth"]


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    """This module's issuer: JWKS and the fake Backend API on loopback (exact request counts)."""
    with LocalIssuer() as server:
        yield server


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
