"""Shared test helpers.

Fixtures `clerk_issuer`, `clerk_auth` and `clerk_token` come from clerkguard's pytest plugin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def clerk_js_fixture() -> dict[str, Any]:
    """A real Clerk session token and its JWKS (clerk/javascript fixtures, MIT)."""
    data: dict[str, Any] = json.loads((FIXTURES / "clerk_js_fixtures.json").read_text())
    return data
