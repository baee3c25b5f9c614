"""clerkguard: Clerk session-token (and machine-token) verification and route guards.

Core names only; framework integrations live in ``clerkguard.flask``,
``clerkguard.quart``, ``clerkguard.litestar`` and ``clerkguard.sanic`` and are
never imported from here.
"""

from __future__ import annotations

from ._backend import BackendUnavailable
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
from .machine import AcceptsToken, Credential, MachineCredential, TokenType
from .session import Reverification, Session
from .users import User

__version__ = "0.1.0"

__all__ = [
    "AcceptsToken",
    "AuthError",
    "Authorize",
    "BackendUnavailable",
    "ClerkAuth",
    "ClerkGuardError",
    "ConfigurationError",
    "Credential",
    "Forbidden",
    "JWKSStats",
    "KeysUnavailable",
    "MachineCredential",
    "MissingDependencyError",
    "NotAuthenticated",
    "Reverification",
    "Session",
    "WebhookError",
    "TokenType",
    "User",
    "__version__",
]
