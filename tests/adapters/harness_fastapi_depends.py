"""The shared table on FastAPI, dependency form: ``examples/fastapi_app.py`` under ``/depends``."""

from __future__ import annotations

from clerkguard import ClerkAuth

from .harness_fastapi import build_app
from .harness_starlette import StarletteHarness


def make_harness(auth: ClerkAuth) -> StarletteHarness:
    """The table's routes guarded with ``Depends(requires_auth(...))``."""
    built = StarletteHarness(build_app(auth), prefix="/depends")
    built.name = "fastapi_depends"
    return built
