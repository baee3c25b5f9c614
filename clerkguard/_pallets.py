"""What the Flask and Quart integrations share: both are Pallets frameworks on werkzeug.

Imported only by [`clerkguard.flask`][clerkguard.flask] and [`clerkguard.quart`][clerkguard.quart], after
they have checked that their framework (and so werkzeug) is installed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from werkzeug import exceptions as http

from .adapters import auth_from_config
from .auth import ClerkAuth
from .errors import AuthError

#: ``app.extensions`` key of the extension's per-app state.
EXTENSION = "clerkguard"
#: Attribute of ``g`` holding the request's session (prefixed: ``g`` is shared).
G_ATTRIBUTE = "_clerkguard_session"


class AuthHTTPExceptionBase(http.HTTPException):
    """A werkzeug ``HTTPException`` carrying an [`AuthError`][clerkguard.AuthError].

    Subclasses name the framework's response class; ``for_error`` picks the
    subclass that also inherits werkzeug's ``Unauthorized``/``Forbidden``/
    ``ServiceUnavailable`` so an app's ``errorhandler(401)`` finds it.
    """

    #: The framework's response class (``flask.Response`` / ``quart.Response``).
    response_class: ClassVar[Callable[..., Any]]
    #: status -> exception class, filled in by each framework module.
    by_status: ClassVar[dict[int, type[AuthHTTPExceptionBase]]] = {}

    def __init__(self, error: AuthError) -> None:
        super().__init__(description=error.detail)
        self.error = error
        self.code = error.status

    @classmethod
    def for_error(cls, error: AuthError) -> Any:
        """The exception class matching ``error.status``, instantiated."""
        return cls.by_status.get(error.status, cls)(error)

    def render(self) -> Any:
        """The JSON error response: ``{"error": ..., "reason": ..., "detail": ...}`` plus headers."""
        return self.response_class(
            json.dumps(self.error.to_dict()),
            status=self.error.status,
            headers=self.error.headers(),
            mimetype="application/json",
        )


class _Response(Protocol):
    status_code: int


ResponseT = TypeVar("ResponseT", bound=_Response)


def no_content(response: ResponseT) -> ResponseT:
    """The framework's default ``OPTIONS`` response made a ``204`` (as Litestar and Sanic answer)."""
    response.status_code = 204
    return response


def automatic_options(request: Any) -> bool:
    """Whether the framework answers this ``OPTIONS`` itself (the rule doesn't declare it)."""
    return bool(getattr(getattr(request, "url_rule", None), "provide_automatic_options", False))


class _PalletsApp(Protocol):
    extensions: dict[str, Any]

    @property
    def config(self) -> Any: ...


@dataclass
class AppState:
    """What ``app.extensions["clerkguard"]`` holds."""

    auth: ClerkAuth
    #: Endpoints found misordered at the first request (``None``: not scanned yet).
    misordered: frozenset[str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


_lazy_lock = threading.Lock()


def app_state(app: _PalletsApp) -> AppState:
    """The app's state; ``@require_auth`` without the extension configures from app.config/env once."""
    state = app.extensions.get(EXTENSION)
    if state is None:
        # No hooks are registered here: Flask forbids setup after the first request.
        with _lazy_lock:
            state = app.extensions.get(EXTENSION)
            if state is None:
                state = app.extensions[EXTENSION] = AppState(auth_from_config(app.config))
    assert isinstance(state, AppState)
    return state


def config_secret(config: Any) -> str | None:
    """``CLERK_WEBHOOK_SIGNING_SECRET`` from an app's config (a list is joined), else ``None``."""
    value = config.get("CLERK_WEBHOOK_SIGNING_SECRET")
    if isinstance(value, (list, tuple)):
        return ", ".join(value)
    return value if isinstance(value, str) else None
