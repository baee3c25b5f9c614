"""The "write an adapter" example: Bottle on the public adapter API, through WSGI.

``examples/bottle_adapter.py`` is what ``docs/adapters.md`` teaches. It also
answers the whole shared table (``harness_bottle.py``); here its own app runs
through Bottle's WSGI interface with werkzeug's WSGI test client, and the
documentation's code is checked against the example, so the page can't drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bottle
import pytest
from werkzeug.test import Client

from clerkguard import ClerkAuth, Session
from clerkguard.adapters import Adapter, guard_of, unguarded_views
from clerkguard.testing import LocalIssuer, session_cookies

from .harness_bottle import EXAMPLE, load_example

Mint = Callable[..., str]
DOC = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"


@pytest.fixture
def client(clerk_auth: ClerkAuth) -> Client:
    return Client(load_example().create_app(clerk_auth))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_public_route_is_untouched(client: Client) -> None:
    assert client.get("/public").get_json() == {"hello": "world"}


def test_no_token_is_a_bare_401_challenge(client: Client) -> None:
    response = client.get("/protected")
    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "error": "unauthorized",
        "reason": "token-missing",
        "detail": "no session token was provided",
    }
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_valid_token_reaches_the_handler(client: Client, clerk_token: Mint) -> None:
    response = client.get("/protected", headers=bearer(clerk_token(user_id="user_b", org_role="admin")))
    assert response.status_code == 200
    assert response.get_json() == {"user_id": "user_b", "org_role": "org:admin"}


def test_session_cookie_authenticates(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    client = Client(load_example().create_app(clerk_auth))
    for name, value in session_cookies(clerk_token(user_id="user_cookie")).items():
        client.set_cookie(name, value)
    assert client.get("/protected").get_json()["user_id"] == "user_cookie"


def test_bad_token_is_401_invalid_token(client: Client, clerk_issuer: LocalIssuer) -> None:
    forged = clerk_issuer.mint(key=LocalIssuer().key)
    response = client.get("/protected", headers=bearer(forged))
    assert response.status_code == 401
    assert response.get_json()["reason"] == "token-invalid-signature"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert forged not in response.get_data(as_text=True)


def test_role_and_permission_rules(client: Client, clerk_token: Mint) -> None:
    member = clerk_token(org_role="member")
    assert client.get("/admin", headers=bearer(member)).status_code == 403
    assert client.get("/admin", headers=bearer(clerk_token(org_role="admin"))).status_code == 200
    assert client.get("/reports", headers=bearer(member)).status_code == 403
    reader = clerk_token(org_role="analyst", permissions=["org:reports:read"])
    assert client.get("/reports", headers=bearer(reader)).status_code == 200


def test_optional_route(client: Client, clerk_token: Mint) -> None:
    assert client.get("/maybe").get_json() == {"user_id": None}
    assert client.get("/maybe", headers=bearer(clerk_token(user_id="user_m"))).get_json() == {
        "user_id": "user_m"
    }


def test_jwks_down_on_cold_cache_is_503(
    clerk_issuer: LocalIssuer, clerk_token: Mint, dead_jwks_uri: str
) -> None:
    with clerk_issuer.auth(jwks_uri=dead_jwks_uri, http_timeout=2.0) as auth:
        response = Client(load_example().create_app(auth)).get("/protected", headers=bearer(clerk_token()))
    assert response.status_code == 503
    assert response.get_json() == {
        "error": "temporarily_unavailable",
        "reason": "jwks-unavailable",
        "detail": "signing keys are temporarily unavailable",
    }
    assert int(response.headers["Retry-After"]) >= 1


def test_async_authorize_is_bridged_into_sync_bottle(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    require_auth = load_example().make_require_auth(clerk_auth)
    app = bottle.Bottle()
    seen: list[Any] = []

    async def only_admins(session: Session, request: Any) -> bool:
        seen.append(request)
        return session.has(role="admin")

    @app.get("/x")
    @require_auth(authorize=only_admins)
    def view() -> str:
        return "ok"

    client = Client(app)
    assert client.get("/x", headers=bearer(clerk_token(org_role="admin"))).status_code == 200
    assert client.get("/x", headers=bearer(clerk_token(org_role="member"))).status_code == 403
    assert all(isinstance(request, bottle.BaseRequest) for request in seen)
    assert len(seen) == 2


def test_every_route_of_the_example_is_guarded_in_the_right_order(clerk_auth: ClerkAuth) -> None:
    app = load_example().create_app(clerk_auth)
    views = {route.rule: route.callback for route in app.routes}
    assert guard_of(views["/public"]) is None
    assert all(guard_of(views[path]) is not None for path in ("/protected", "/admin", "/reports", "/maybe"))
    assert unguarded_views(views) == []


def test_the_adapter_is_a_public_api_subclass() -> None:
    adapter = load_example().BottleAdapter()
    assert isinstance(adapter, Adapter)
    hooks = ("header", "method", "find_request", "store", "reject", "options_response")
    assert all(getattr(type(adapter), hook) is not getattr(Adapter, hook) for hook in hooks)


def test_the_docs_show_the_example_verbatim() -> None:
    # docs/adapters.md opens with the example, block by block; the blocks run
    # (tests/docs) and must stay identical to the tested file.
    source = EXAMPLE.read_text()
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)[:4]
    for block in blocks:
        assert block.strip() in source, f"docs/adapters.md drifted from the example:\n{block}"
    shown = "".join(blocks)
    for name in re.findall(r"^(?:class|def) (\w+)", source, flags=re.MULTILINE):
        assert re.search(rf"^(?:class|def) {name}\b", shown, flags=re.MULTILINE), f"{name} is not shown"
