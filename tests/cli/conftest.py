"""Command-line tests: markers. Helpers live in ``support.py``."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "demo: runs `clerkguard demo` against the real examples (deselect: -m 'not demo')"
    )
