"""The contract every framework harness of the shared request table fulfils.

A harness wraps one framework's app (built on a given :class:`~clerkguard.ClerkAuth`)
behind its own test client and answers :meth:`Harness.request` with a
framework-neutral :class:`Result`. Each framework has a module
``tests/adapters/harness_<framework>.py`` with ``make_harness(auth) -> Harness``
and is listed once in ``conftest.FRAMEWORKS``.

Every harness serves exactly these routes (the table in ``table.py`` pins
what each must answer, identically in every framework):

======================  ======================================================================
``GET /protected``      ``@require_auth``; returns ``{"user_id": ..., "org_role": ...}`` read
                        from the framework's session location (Flask/Quart ``current_auth``,
                        Litestar/Starlette/FastAPI ``request.auth``, Sanic ``request.ctx.auth``).
``GET /admin``          ``@require_auth(role="admin")``; returns ``{"user_id": ...}``.
``GET /perm``           ``@require_auth(authorize=has_permission(PERMISSION))``.
``GET /async-authorize`` ``authorize=`` :func:`async_allow_user` (async; True only for
                        :data:`ALLOWED_USER`).
``GET /authorize-raises`` ``authorize=`` :func:`raising_authorize` (raises ``RuntimeError``).
``GET /truthy``         ``authorize=`` :func:`truthy_authorize` (returns ``1``, not ``True``).
``GET /request-arg``    ``authorize=is_request_of(<the framework's request class>)``: True
                        only if the 2nd positional argument is the framework's own request.
``GET /optional``       ``@require_auth(optional=True)``; returns ``{"user_id": <id or null>}``.
``GET+OPTIONS /preflight`` guarded handler that answers ``OPTIONS`` itself with an empty
                        ``204`` (and ``GET`` with ``{"user_id": ...}``).
``GET /sync``           a guarded *sync* handler; returns ``{"user_id": ..., "kind": "sync"}``.
``GET /async``          a guarded *async* handler; returns ``{"user_id": ..., "kind": "async"}``.
``GET /machine``        ``@require_auth(accepts_token=["m2m_token", "oauth_token", "api_key"])``;
                        returns ``{"token_type": ..., "subject": ...}`` (a session's subject:
                        its user id), read through the surface typed ``Credential``.
``GET /any``            ``@require_auth(accepts_token="any")``; the same answer.
``GET /scoped``         ``/machine`` with ``scope="orders:read"`` (DRF: ``HasScope``).
``POST /webhooks/clerk`` ``@require_webhook(events=user.created/updated/deleted,
                        secret=WEBHOOK_SECRETS, dedupe=InMemoryDedupe())``; returns
                        ``{"type", "user_id": data.id, "calls": times the handler ran for this id}``.
======================  ======================================================================

Every other route answers ``{"user_id": ...}`` on success. Error bodies are
the guard's own: ``application/json`` ``{"error": ..., "reason": ..., "detail": ...}``.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, Union
from unittest import mock

from clerkguard import Session

__all__ = [
    "ALLOWED_USER",
    "PERMISSION",
    "WEBHOOK_SECRETS",
    "Harness",
    "Headers",
    "header_list",
    "Result",
    "async_allow_user",
    "is_request_of",
    "raising_authorize",
    "truthy_authorize",
]

#: The only user ``/async-authorize`` lets through.
ALLOWED_USER = "user_allowed"
#: The permission ``/perm`` requires.
PERMISSION = "org:reports:read"


#: Request headers: a mapping, or (name, value) pairs where a name may repeat.
Headers = Union[Mapping[str, str], Sequence[tuple[str, str]]]  # noqa: UP007 - a runtime alias on 3.10


def header_list(headers: Headers | None, cookies: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Headers as pairs (repeated names kept), with ``cookies`` as one ``Cookie`` header."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    if cookies:
        pairs.append(("Cookie", "; ".join(f"{name}={value}" for name, value in cookies.items())))
    return pairs


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


#: ``/webhooks/clerk``'s signing secrets, mid-rotation: (current, previous), fresh per run.
WEBHOOK_SECRETS: tuple[str, str] = (_whsec(), _whsec())


@dataclass
class Result:
    """A framework-neutral response."""

    status: int
    headers: dict[str, str]  # lower-case keys
    json: Any


class Harness(Protocol):
    """One framework's app behind its own test client."""

    name: str

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Headers | None = None,
        cookies: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Result:
        """Send one request (``body``: the raw request body) through the framework's test client."""
        ...


async def async_allow_user(session: Session, request: Any) -> bool:
    """An async ``authorize``: allows only :data:`ALLOWED_USER`."""
    await asyncio.sleep(0)  # a real suspension point, so awaiting is exercised
    return session.user_id == ALLOWED_USER


def raising_authorize(session: Session, request: Any) -> bool:
    """An ``authorize`` with a bug: must become a 403, never a 500."""
    raise RuntimeError("authorize crashed")


def truthy_authorize(session: Session, request: Any) -> Any:
    """Returns ``1``: truthy but not ``True``, so the guard must deny."""
    return 1


def is_request_of(request_type: type) -> Any:
    """An ``authorize`` that allows only when called positionally with a ``request_type``."""

    def authorize(*args: Any, **kwargs: Any) -> bool:
        return (
            not kwargs
            and len(args) == 2
            and isinstance(args[0], Session)
            and isinstance(args[1], request_type)
        )

    return authorize


#: The example apps (``examples`` is not a package); their ``create_app(auth)`` serves the table's routes.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(stem: str) -> ModuleType:
    """Import ``examples/<stem>.py`` once (registered in ``sys.modules``).

    Frameworks resolve the app's root path or type hints through the module,
    hence the registration. An example whose module-level ``app`` configures
    itself from ``CLERK_*`` at import gets a placeholder key source for that
    import: that app is never served nor asked to verify.
    """
    name = f"_clerkguard_example_{stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{stem}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        placeholder = {
            "CLERK_JWKS_URI": "http://127.0.0.1:9/jwks.json",
            "CLERK_ISSUER": "https://placeholder.invalid",
        }
        with mock.patch.dict(os.environ, placeholder):
            spec.loader.exec_module(module)
    return sys.modules[name]
