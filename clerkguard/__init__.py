"""clerkguard: Clerk session-token verification and route guards.

Core names only; framework integrations live in ``clerkguard.flask``,
``clerkguard.quart``, ``clerkguard.litestar`` and ``clerkguard.sanic`` and are
never imported from here.
"""

from __future__ import annotations

from ._keyring import JWKSStats
from .auth import Authorize, ClerkAuth
from .errors import (
    AuthError,
    ClerkGuardError,
    ConfigurationError,
    Forbidden,
    KeysUnavailable,
    MissingDependencyError,
    NotAuthenticated,
    WebhookError,
)
from .session import Reverification, Session

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Authorize",
    "ClerkAuth",
    "ClerkGuardError",
    "ConfigurationError",
    "Forbidden",
    "JWKSStats",
    "KeysUnavailable",
    "MissingDependencyError",
    "NotAuthenticated",
    "Reverification",
    "Session",
    "WebhookError",
    "__version__",
]
