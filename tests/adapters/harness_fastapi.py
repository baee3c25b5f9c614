"""The shared table on FastAPI, decorator form: ``examples/fastapi_app.py``'s root routes."""

from __future__ import annotations

from types import ModuleType

from fastapi import FastAPI

from clerkguard import ClerkAuth

from . import harness
from .harness_starlette import StarletteHarness


def load_example() -> ModuleType:
    """``examples/fastapi_app.py``, whose ``create_app(auth)`` serves the table's routes twice."""
    return harness.load_example("fastapi_app")


def build_app(auth: ClerkAuth) -> FastAPI:
    """The example's app (both forms of the table, and its own routes) on ``auth``."""
    app: FastAPI = load_example().create_app(auth, webhook_secret=list(harness.WEBHOOK_SECRETS))
    return app


def make_harness(auth: ClerkAuth) -> StarletteHarness:
    """The table's routes guarded with ``@require_auth`` below ``@router.get``."""
    built = StarletteHarness(build_app(auth))
    built.name = "fastapi"
    return built
