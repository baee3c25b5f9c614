"""Fixtures of the shared request table.

To add a framework: write ``tests/adapters/harness_<name>.py`` with
``make_harness(auth: ClerkAuth) -> Harness`` and add ``"<name>"`` to
:data:`FRAMEWORKS` (one line; ``"<name>:<package>"`` when the package to
import is not ``<name>``). A framework that is not installed is skipped;
a harness module that fails to import for any other reason is an error.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clerkguard import ClerkAuth
from clerkguard.testing import LocalIssuer

from .harness import Harness
from .table import TRUSTED_ORIGIN, mint_tokens

#: Frameworks in the shared table; each name is also the package to import (see :data:`PACKAGES`).
FRAMEWORKS: list[str] = [
    "flask",
    "quart",
    "litestar",
    "sanic",
    "starlette",
    "fastapi",
    "fastapi_depends",  # the same example, Depends(requires_auth(...)) under /depends
    "bottle",  # not built in: examples/bottle_adapter.py, the adapter docs/adapters.md teaches
    "django",
    "django_async",
    "drf",
]

#: The package a framework entry needs, where it isn't the entry's own name.
PACKAGES: dict[str, str] = {"fastapi_depends": "fastapi", "django_async": "django", "drf": "rest_framework"}

HarnessFactory = Callable[[ClerkAuth], Harness]


def table_auth(issuer: LocalIssuer, **options: Any) -> ClerkAuth:
    """The ``ClerkAuth`` every table app runs on: the table's frontend is an authorized party,
    and opaque machine tokens are verified by the issuer's fake Backend API."""
    return issuer.machine_auth(authorized_parties=[TRUSTED_ORIGIN], **options)


def table_env(issuer: LocalIssuer) -> dict[str, str]:
    """The same configuration as ``CLERK_*`` variables, for apps under real servers."""
    return {
        **issuer.env(),
        "CLERK_AUTHORIZED_PARTIES": TRUSTED_ORIGIN,
        "CLERK_SECRET_KEY": issuer.secret_key,
        "CLERK_API_URL": issuer.api_url,
    }


def load_factory(framework: str) -> HarnessFactory:
    """``make_harness`` of ``harness_<framework>.py``; skips when the framework is absent."""
    pytest.importorskip(PACKAGES.get(framework, framework))
    module = importlib.import_module(f"{__package__}.harness_{framework}")
    factory: HarnessFactory = module.make_harness
    return factory


def close_harness(harness: Harness) -> None:
    """Harnesses may hold a client or a server; an optional ``close()`` releases it."""
    close: Callable[[], Any] | None = getattr(harness, "close", None)
    if close is not None:
        close()


@pytest.fixture(scope="session")
def table_issuer() -> Iterator[LocalIssuer]:
    """The issuer every table token comes from (JWKS on loopback)."""
    with LocalIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="session")
def dead_jwks_uri() -> Iterator[str]:
    """A loopback JWKS URL that refuses connections (bound, never listening)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # held for the session so no one else takes the port
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/.well-known/jwks.json"
    finally:
        sock.close()


@pytest.fixture(scope="session")
def tokens(table_issuer: LocalIssuer) -> dict[str, str]:
    """The tokens the table's templates name."""
    with table_auth(table_issuer) as auth:
        return mint_tokens(table_issuer, auth)


@pytest.fixture(
    scope="session",
    params=FRAMEWORKS or [pytest.param("", marks=pytest.mark.skip(reason="no framework registered"))],
)
def make_harness(request: pytest.FixtureRequest) -> HarnessFactory:
    """One framework's ``make_harness`` (parametrized over :data:`FRAMEWORKS`)."""
    return load_factory(request.param)


@pytest.fixture(scope="session")
def harness(make_harness: HarnessFactory, table_issuer: LocalIssuer) -> Iterator[Harness]:
    """The framework's app on a live issuer, shared by the whole table."""
    auth = table_auth(table_issuer)
    built = make_harness(auth)
    yield built
    close_harness(built)
    auth.close()


@pytest.fixture(scope="session")
def down_harness(
    make_harness: HarnessFactory, table_issuer: LocalIssuer, dead_jwks_uri: str
) -> Iterator[Harness]:
    """The framework's app whose keys can't be fetched (cold cache, dead port)."""
    auth = table_auth(table_issuer, jwks_uri=dead_jwks_uri, http_timeout=2.0)
    built = make_harness(auth)
    yield built
    close_harness(built)
    auth.close()
