"""pytest fixtures for testing apps protected by clerkguard.

Registered automatically (entry point ``pytest11``) when clerkguard is installed:

* ``clerk_issuer`` -- a started [`LocalIssuer`][clerkguard.testing.LocalIssuer]
  (one per test session; faults and key rotations are reset for each test);
* ``clerk_auth`` -- a [`ClerkAuth`][clerkguard.ClerkAuth] for that issuer, fresh
  per test and closed afterwards;
* ``clerk_token`` -- a factory: ``clerk_token(org_role="admin")`` mints a token;
* ``clerk_env`` -- the ``CLERK_*`` environment pointed at ``clerk_issuer`` for
  one test (for apps built inside the test, e.g. by an application factory);
* ``clerk_webhook_signer`` -- a [`WebhookSigner`][clerkguard.testing.WebhookSigner] with a
  fresh secret, also set as ``CLERK_WEBHOOK_SIGNING_SECRET`` for the test.

An app that configures itself from ``CLERK_*`` when its module is imported
(``ClerkGuard(app)`` at module level) needs those variables before pytest
imports the test modules (and ``conftest.py``) that import it. Turn on
``clerk_env`` in the pytest configuration (``clerk_env = true`` under
``[tool.pytest.ini_options]``) or pass ``--clerk-env``: the session's local
issuer then starts before anything is imported, every ``CLERK_*`` variable of
the process is replaced by the ones pointing at it for the whole run (so a test
run never talks to a real Clerk instance), and they are restored at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .auth import ClerkAuth
from .testing import Fault, LocalIssuer, WebhookSigner

_SESSION_ISSUER = pytest.StashKey[LocalIssuer]()
_HELP = (
    "point every CLERK_* environment variable at the clerk_issuer fixture's local issuer "
    "before any test module or conftest.py is imported (apps configured at import time)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clerkguard")
    group.addoption("--clerk-env", action="store_true", default=False, dest="clerk_env", help=_HELP)
    parser.addini("clerk_env", _HELP, type="bool", default=False)


def _clerk_env_wanted(config: pytest.Config) -> bool:
    return bool(getattr(config.known_args_namespace, "clerk_env", False) or config.getini("clerk_env"))


def _export_session_issuer(config: pytest.Config) -> None:
    if _SESSION_ISSUER in config.stash:
        return
    issuer = LocalIssuer().start()
    saved = {name: value for name, value in os.environ.items() if name.startswith("CLERK_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(issuer.env())
    config.stash[_SESSION_ISSUER] = issuer

    def restore() -> None:
        for name in [n for n in os.environ if n.startswith("CLERK_")]:
            del os.environ[name]
        os.environ.update(saved)
        issuer.stop()

    config.add_cleanup(restore)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # The earliest hook an installed plugin gets: before conftest.py files and
    # test modules are imported, so an app configured at import time sees the issuer.
    if _clerk_env_wanted(early_config):
        _export_session_issuer(early_config)


def pytest_configure(config: pytest.Config) -> None:
    # For a plugin registered too late for the hook above (``-p`` from a conftest, pytester).
    if _clerk_env_wanted(config):
        _export_session_issuer(config)


@pytest.fixture(scope="session")
def _clerk_issuer_server(pytestconfig: pytest.Config) -> Iterator[LocalIssuer]:
    shared = pytestconfig.stash.get(_SESSION_ISSUER, None)
    if shared is not None:  # started for --clerk-env / clerk_env = true: the one CLERK_* points at
        yield shared
        return
    issuer = LocalIssuer().start()
    yield issuer
    issuer.stop()


@pytest.fixture
def clerk_issuer(_clerk_issuer_server: LocalIssuer) -> Iterator[LocalIssuer]:
    """A running local issuer, shared by the session but reset for each test.

    Faults (of the JWKS and of the fake Backend API), ``jwks_override``, the
    request counts, the recorded Backend API requests, the users and
    memberships registered (``add_user``, ``add_membership``) and key
    rotations (``rotate()``, ``extra_keys``) a test made are undone before the
    next one. With ``clerk_env`` turned on it is the issuer the ``CLERK_*``
    variables point at.
    """
    issuer = _clerk_issuer_server
    key, kid, extra = issuer.key, issuer.kid, list(issuer.extra_keys)
    _reset(issuer)
    yield issuer
    _reset(issuer)
    issuer.key, issuer.kid, issuer.extra_keys = key, kid, extra


def _reset(issuer: LocalIssuer) -> None:
    issuer.set_fault(Fault())
    issuer.jwks_override = None
    issuer.reset_count()
    issuer.reset_backend()


@pytest.fixture
def clerk_auth(clerk_issuer: LocalIssuer) -> Iterator[ClerkAuth]:
    """A ``ClerkAuth`` that fetches keys from ``clerk_issuer`` over loopback."""
    auth = clerk_issuer.auth()
    yield auth
    auth.close()


@pytest.fixture
def clerk_token(clerk_issuer: LocalIssuer) -> Callable[..., str]:
    """``clerk_token(**claims)`` mints a session token from ``clerk_issuer``."""

    def mint(**options: Any) -> str:
        return clerk_issuer.mint(**options)

    return mint


@pytest.fixture
def clerk_env(clerk_issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The ``CLERK_*`` environment pointed at ``clerk_issuer`` for this test.

    Every ``CLERK_*`` variable is removed, then ``CLERK_PUBLISHABLE_KEY`` and
    ``CLERK_JWKS_URI`` are set from ``clerk_issuer.env()`` (returned); all is
    undone after the test. An app built inside the test from the environment
    (``ClerkGuard(app)``, ``ClerkAuth()``) then trusts ``clerk_issuer``'s tokens.
    """
    for name in [n for n in os.environ if n.startswith("CLERK_")]:
        monkeypatch.delenv(name)
    env = clerk_issuer.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def clerk_webhook_signer(monkeypatch: pytest.MonkeyPatch) -> WebhookSigner:
    """Signs Clerk-shaped webhook deliveries with a fresh secret.

    The secret is also ``CLERK_WEBHOOK_SIGNING_SECRET`` for the test, so
    ``require_webhook`` without ``secret=`` accepts what it signs.
    """
    signer = WebhookSigner()
    monkeypatch.setenv("CLERK_WEBHOOK_SIGNING_SECRET", signer.secret)
    return signer
