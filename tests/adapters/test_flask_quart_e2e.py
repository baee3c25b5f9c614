"""End to end: the Flask example under gunicorn, the Quart example under hypercorn.

Each example runs in its own process on a free loopback port, configured only
through ``CLERK_*`` variables pointing at a :class:`~clerkguard.testing.LocalIssuer`.
Over real HTTP the test checks that many requests cost one key fetch, the
example's own routes (class-based view, guarded blueprint, websocket), and
the whole shared request table. Servers are always stopped (process group,
SIGTERM then SIGKILL); every wait is bounded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from clerkguard.testing import LocalIssuer

from .table import CASES, mint_tokens
from .test_litestar_sanic_e2e import HTTPHarness, Server, free_port, serve, wait_until
from .test_table import assert_answer, send
from .test_webhook_table import run_webhook_table


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    """A private issuer: these tests rotate its key and count its requests."""
    with LocalIssuer() as local:
        yield local


def exercise(server: Server, issuer: LocalIssuer) -> HTTPHarness:
    """What both examples must do over the wire; returns the harness for more checks."""
    http = HTTPHarness(server.url)
    # Distinct tokens (real verifications, not cache hits): one fetch in all,
    # whether the startup hook (Quart) or the first request (Flask) made it.
    for i in range(20):
        response = http.get("/protected", issuer.mint(user_id=f"user_{i}", org_role="member"))
        assert response.status_code == 200, response.text
        assert response.json() == {"user_id": f"user_{i}", "org_role": "org:member"}
    wait_until(lambda: issuer.request_count >= 1, 10, "the key fetch")
    assert issuer.request_count == 1

    # Sync and async views, same keys.
    for path, kind in (("/sync", "sync"), ("/async", "async")):
        response = http.get(path, issuer.mint(user_id=f"user_{kind}"))
        assert response.json() == {"user_id": f"user_{kind}", "kind": kind}, response.text

    # The example's class-based view and whole-blueprint guard.
    reader = issuer.mint(user_id="user_r", org_role="member", permissions=["org:reports:read"])
    assert http.get("/me", reader).json() == {"user_id": "user_r"}
    assert http.get("/me").status_code == 401
    assert http.get("/reports/", reader).json() == {"user_id": "user_r", "reports": []}
    denied = http.get("/reports/", issuer.mint(org_role="member"))
    assert denied.status_code == 403
    assert denied.json() == {
        "error": "insufficient_scope",
        "reason": "authorization-denied",
        "detail": "the session lacks a required role or permission",
    }
    assert http.get("/health").json() == {"ok": True}

    # The whole shared table over HTTP.
    with issuer.auth() as auth:  # only for the suffixed cookie name
        tokens = mint_tokens(issuer, auth)
    for case in CASES:
        if case.keys == "up":
            assert_answer(case, send(http, case, tokens, issuer))
    # Unknown kids and forgeries in the table are held to the refetch cooldown.
    assert issuer.request_count <= 2
    # Clerk webhooks through the real server: raw bodies, the secrets from the environment.
    run_webhook_table(http)
    return http


def test_flask_example_under_gunicorn(issuer: LocalIssuer) -> None:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "examples.flask_app:app", "--bind", f"127.0.0.1:{port}"]
    # gunicorn refuses header fields over 8190 bytes itself (a plain 400); the
    # table's 9000-character token must reach the guard to get its JSON 401.
    command += ["--workers", "1", "--limit-request-field_size", "16384", "--log-level", "warning"]
    with serve(command, issuer, port) as server:
        exercise(server, issuer)


def test_quart_example_under_hypercorn(issuer: LocalIssuer) -> None:
    port = free_port()
    command = [sys.executable, "-m", "hypercorn", "examples.quart_app:app", "--bind", f"127.0.0.1:{port}"]
    with serve([*command, "--log-level", "warning"], issuer, port) as server:
        exercise(server, issuer)
        url = f"ws://127.0.0.1:{port}/ws"
        # Websocket: a handshake with a valid token is accepted and sees the session ...
        token = issuer.mint(user_id="user_ws")
        with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
            assert ws.recv(timeout=10) == '{"user_id": "user_ws"}'
        # ... and one without is refused before accept, with the guard's HTTP answer.
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=10)
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"] == "Bearer"
        assert b'"reason": "token-missing"' in refused.value.response.body
