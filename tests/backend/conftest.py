"""Fixtures of the Backend API user tests: one loopback issuer + fake Backend API per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from backend_fixtures import issuer, make_auth

from clerkguard.testing import Fault, LocalIssuer

__all__ = ["ORG_ID", "ORG_SLUG", "issuer", "make_auth"]

#: The organization the restricted instances of these tests belong to.
ORG_ID = "org_2acmeacmeacmeacmeacmeacme0"
ORG_SLUG = "acme"


@pytest.fixture(autouse=True)
def _healthy(issuer: LocalIssuer) -> Iterator[None]:
    issuer.set_fault(Fault())
    issuer.reset_backend()
    yield
    issuer.set_fault(Fault())
    issuer.set_backend_fault(Fault())
