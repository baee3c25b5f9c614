"""Fixtures of the machine-token tests: one loopback issuer + fake Backend API per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from backend_fixtures import issuer, make_auth

from clerkguard.testing import Fault, LocalIssuer

__all__ = ["issuer", "make_auth"]


@pytest.fixture(autouse=True)
def _healthy(issuer: LocalIssuer) -> Iterator[None]:
    issuer.set_fault(Fault())
    issuer.set_backend_fault(Fault())
    issuer.backend_requests.clear()
    yield
    issuer.set_fault(Fault())
    issuer.set_backend_fault(Fault())
