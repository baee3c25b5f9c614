"""The guards' no-await shortcut (``Guard.cached``) decides exactly what the full path decides.

``Guard.cached`` answers a repeated ``Authorization: Bearer`` line from the
verified-token cache, and indexes the lines it has seen by their last
characters (part of the signature) so a repeated line is not hashed again.
These tests go through a real Starlette app and its test client: a line
that shares that tail with a verified one but differs anywhere else, an
expired token whose line is indexed, a kind the route does not take and a
full index must all be decided as if the shortcut did not exist.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from clerkguard import ClerkAuth, adapters
from clerkguard.rules import all_of, has_role, is_pure
from clerkguard.starlette import ClerkGuard, StarletteAdapter, require_auth
from clerkguard.testing import LocalIssuer

RAN: list[str] = []


@require_auth
async def sessions(request: Request) -> JSONResponse:
    RAN.append("sessions")
    return JSONResponse({"user": request.auth.user_id})


@require_auth(accepts_token="m2m_token")
async def machines(request: Request) -> JSONResponse:
    RAN.append("machines")
    return JSONResponse({"ok": True})


@require_auth(role="admin", permission="org:invoices:read")
async def admins(request: Request) -> JSONResponse:
    RAN.append("admins")
    return JSONResponse({"user": request.auth.user_id})


def _explodes(session: Any, request: Any) -> bool:
    raise RuntimeError("a rule that fails")


@require_auth(authorize=all_of(has_role("admin"), _explodes))
async def exploding(request: Request) -> JSONResponse:
    RAN.append("exploding")
    return JSONResponse({"ok": True})


class Clock:
    """A settable clock for ``ClerkAuth(clock=...)``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def client(clerk_issuer: LocalIssuer, clock: Clock) -> Iterator[TestClient]:
    auth = clerk_issuer.auth(clock=clock)
    routes = [Route("/sessions", sessions), Route("/machines", machines), Route("/admins", admins)]
    app = Starlette(routes=[*routes, Route("/exploding", exploding)])
    ClerkGuard(app, auth)
    RAN.clear()
    with TestClient(app) as test_client:
        yield test_client
    auth.close()


def _auth_of(client: TestClient) -> ClerkAuth:
    auth = client.app.state.clerkguard.auth  # type: ignore[attr-defined]
    assert isinstance(auth, ClerkAuth)
    return auth


def get(client: TestClient, path: str, line: str) -> tuple[int, str]:
    response = client.get(path, headers={"Authorization": line})
    body = response.json()
    return response.status_code, body.get("reason") or body.get("user") or ""


def test_a_line_sharing_a_verified_lines_tail_is_verified_in_full(
    client: TestClient, clerk_issuer: LocalIssuer
) -> None:
    token = clerk_issuer.mint(user_id="user_real")
    assert get(client, "/sessions", f"Bearer {token}") == (200, "user_real")
    assert get(client, "/sessions", f"Bearer {token}") == (200, "user_real")  # indexed, from the cache
    assert len(_auth_of(client)._bearer_lines) == 1
    # Same signature (so the same tail), another payload: a forgery.
    header, _, signature = token.split(".")
    other = clerk_issuer.mint(user_id="user_evil").split(".")[1]
    forged = f"{header}.{other}.{signature}"
    assert forged[-adapters._LINE_TAIL :] == token[-adapters._LINE_TAIL :]
    assert get(client, "/sessions", f"Bearer {forged}") == (401, "token-invalid-signature")
    # A line that only grew a prefix or a second credential keeps the tail too.
    assert get(client, "/sessions", f"Basic {token}")[0] == 401
    assert get(client, "/sessions", f"Bearer x, Bearer {token}") == (401, "token-ambiguous")
    assert RAN == ["sessions", "sessions"]
    assert get(client, "/sessions", f"Bearer {token}") == (200, "user_real")


def test_whitespace_around_the_token_is_read_alike_on_a_first_and_a_repeated_line(
    client: TestClient, clerk_issuer: LocalIssuer
) -> None:
    token = clerk_issuer.mint(user_id="user_ws")
    for line in (f"Bearer {token}", f"Bearer {token} ", f"Bearer  {token}", f"Bearer {token}\t"):
        assert get(client, "/sessions", line) == (200, "user_ws"), repr(line[-3:])
        assert get(client, "/sessions", line) == (200, "user_ws"), repr(line[-3:])


def test_an_indexed_line_whose_token_expired_is_refused(
    client: TestClient, clerk_issuer: LocalIssuer, clock: Clock
) -> None:
    token = clerk_issuer.mint(expires_in=60)
    assert get(client, "/sessions", f"Bearer {token}")[0] == 200
    assert get(client, "/sessions", f"Bearer {token}")[0] == 200
    clock.now += 3600
    assert get(client, "/sessions", f"Bearer {token}") == (401, "token-expired")
    assert RAN == ["sessions", "sessions"]


def test_an_indexed_session_line_on_a_machine_route_is_refused(
    client: TestClient, clerk_issuer: LocalIssuer
) -> None:
    token = clerk_issuer.mint()
    assert get(client, "/sessions", f"Bearer {token}")[0] == 200
    assert get(client, "/sessions", f"Bearer {token}")[0] == 200
    assert get(client, "/machines", f"Bearer {token}") == (401, "token-type-not-accepted")
    assert RAN == ["sessions", "sessions"]


def test_the_line_index_is_bounded(
    client: TestClient, clerk_issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapters, "_LINES_MAX", 3)
    tokens = [clerk_issuer.mint(user_id=f"user_{i}") for i in range(7)]
    for _ in range(2):
        for i, token in enumerate(tokens):
            assert get(client, "/sessions", f"Bearer {token}") == (200, f"user_{i}")
            assert len(_auth_of(client)._bearer_lines) <= 3


def test_built_in_rules_are_decided_on_the_shortcut_alike(
    client: TestClient, clerk_issuer: LocalIssuer
) -> None:
    assert admins.__clerkguard__._quick  # type: ignore[attr-defined]  # built-in rules: decided early
    admin = clerk_issuer.mint(
        user_id="user_a", org_id="org_1", org_role="admin", permissions=["org:invoices:read"]
    )
    no_permission = clerk_issuer.mint(user_id="user_b", org_id="org_1", org_role="admin")
    member = clerk_issuer.mint(
        user_id="user_c", org_id="org_1", org_role="member", permissions=["org:invoices:read"]
    )
    for _ in range(3):  # first request (full path), then repeated lines (the shortcut)
        assert get(client, "/admins", f"Bearer {admin}") == (200, "user_a")
        assert get(client, "/admins", f"Bearer {no_permission}") == (403, "authorization-denied")
        assert get(client, "/admins", f"Bearer {member}") == (403, "authorization-denied")
    assert RAN == ["admins"] * 3


def test_a_rule_of_ones_own_is_never_decided_early_and_fails_closed(
    client: TestClient, clerk_issuer: LocalIssuer
) -> None:
    rule = all_of(has_role("admin"), _explodes)
    assert not is_pure(rule)
    assert is_pure(all_of(has_role("admin"), has_role("owner")))
    assert not exploding.__clerkguard__._quick  # type: ignore[attr-defined]
    # GuardOptions built by hand may carry rules of one's own: not decided early either.
    adapter = StarletteAdapter()
    assert not adapters.Guard(adapter, adapters.GuardOptions(rules=(_explodes,)))._quick
    assert adapters.Guard(adapter, adapters.GuardOptions(rules=(has_role("admin"),)))._quick
    admin = clerk_issuer.mint(org_id="org_1", org_role="admin")
    for _ in range(2):
        assert get(client, "/exploding", f"Bearer {admin}") == (403, "authorization-error")
    assert RAN == []
