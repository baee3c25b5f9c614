"""Guards with ``accepts_token``: machine credentials from the Bearer header only.

Flask (sync ``Guard.check``) and Litestar (async ``Guard.acheck``) through
their own test clients, on a real loopback issuer and fake Backend API.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from litestar import Litestar, Request, get
from litestar.testing import TestClient

from clerkguard import ClerkAuth, ConfigurationError
from clerkguard.flask import ClerkGuard, current_auth
from clerkguard.flask import require_auth as flask_require_auth
from clerkguard.litestar import ClerkPlugin
from clerkguard.litestar import require_auth as litestar_require_auth
from clerkguard.testing import LocalIssuer, cookie_header, session_cookies

MACHINE = ["m2m_token", "oauth_token", "api_key"]


def _answer(credential: Any) -> dict[str, Any]:
    return {"kind": credential.token_type, "subject": getattr(credential, "subject", credential.user_id)}


def flask_app(auth: ClerkAuth) -> flask.Flask:
    app = flask.Flask(__name__)
    ClerkGuard(app, auth=auth)

    @app.get("/machine")
    @flask_require_auth(accepts_token=MACHINE)
    def machine() -> dict[str, Any]:
        return _answer(current_auth)

    @app.get("/both")
    @flask_require_auth(accepts_token="any")
    def both() -> dict[str, Any]:
        return _answer(current_auth)

    @app.get("/scoped")
    @flask_require_auth(accepts_token="api_key", authorize=lambda c, r: c.has(scope="orders:read"))
    def scoped() -> dict[str, Any]:
        return _answer(current_auth)

    @app.get("/session")
    @flask_require_auth
    def session() -> dict[str, Any]:
        return _answer(current_auth)

    return app


@get("/machine")
@litestar_require_auth(accepts_token=MACHINE)
async def ls_machine(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _answer(request.auth)


@get("/both")
@litestar_require_auth(accepts_token="any")
async def ls_both(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _answer(request.auth)


@get("/scoped")
@litestar_require_auth(accepts_token="api_key", authorize=lambda c, r: c.has(scope="orders:read"))
async def ls_scoped(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _answer(request.auth)


@get("/session")
@litestar_require_auth
async def ls_session(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _answer(request.auth)


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as server:
        yield server


@pytest.fixture(params=["flask", "litestar"])
def client(request: pytest.FixtureRequest, issuer: LocalIssuer) -> Iterator[Any]:
    auth = issuer.machine_auth()
    if request.param == "flask":
        yield flask_app(auth).test_client(use_cookies=False)  # our Cookie header, sent as is
    else:
        app = Litestar(
            [ls_machine, ls_both, ls_scoped, ls_session], plugins=[ClerkPlugin(auth)], openapi_config=None
        )
        with TestClient(app) as test_client:
            yield test_client
    auth.close()


def _get(client: Any, path: str, token: str | None = None, cookie: str | None = None) -> tuple[int, Any]:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        headers["Cookie"] = cookie_header(session_cookies(cookie))
    response = client.get(path, headers=headers)
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    return response.status_code, body


def test_each_machine_kind_passes_where_accepted(client: Any, issuer: LocalIssuer) -> None:
    for token, kind, subject in [
        (issuer.mint_m2m(machine_id="mch_a"), "m2m_token", "mch_a"),
        (issuer.mint_oauth(user_id="user_o"), "oauth_token", "user_o"),
        (issuer.issue_m2m_token(machine_id="mch_b"), "m2m_token", "mch_b"),
        (issuer.issue_oauth_token(user_id="user_p"), "oauth_token", "user_p"),
        (issuer.issue_api_key(subject="org_k"), "api_key", "org_k"),
    ]:
        assert _get(client, "/machine", token) == (200, {"kind": kind, "subject": subject})
        assert _get(client, "/both", token) == (200, {"kind": kind, "subject": subject})
        status, body = _get(client, "/session", token)
        assert (status, body["reason"]) == (401, "token-type-not-accepted")


def test_session_tokens_are_refused_by_machine_routes(client: Any, issuer: LocalIssuer) -> None:
    token = issuer.mint(user_id="user_s")
    status, body = _get(client, "/machine", token)
    assert (status, body["reason"]) == (401, "token-type-not-accepted")
    assert _get(client, "/both", token) == (200, {"kind": "session_token", "subject": "user_s"})


def test_machine_credentials_are_read_from_the_bearer_header_only(client: Any, issuer: LocalIssuer) -> None:
    # A machine-only route never reads the cookie: a session cookie is no token at all there.
    status, body = _get(client, "/machine", cookie=issuer.mint())
    assert (status, body["reason"]) == (401, "token-missing")
    # On a route accepting both, a machine token in the cookie is refused, in the header accepted.
    m2m = issuer.mint_m2m()
    status, body = _get(client, "/both", cookie=m2m)
    assert (status, body["reason"]) == (401, "token-type-not-accepted")
    assert _get(client, "/both", m2m)[0] == 200
    # And a session cookie on that route still works (the browser's path).
    assert _get(client, "/both", cookie=issuer.mint(user_id="user_c")) == (
        200,
        {"kind": "session_token", "subject": "user_c"},
    )


def test_rules_see_the_machine_credential(client: Any, issuer: LocalIssuer) -> None:
    assert _get(client, "/scoped", issuer.issue_api_key(scopes=["orders:read"]))[0] == 200
    status, body = _get(client, "/scoped", issuer.issue_api_key(scopes=["orders:write"]))
    assert (status, body["reason"]) == (403, "authorization-denied")


def test_backend_api_outage_is_503_with_retry_after(issuer: LocalIssuer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        auth = issuer.machine_auth(api_url=dead, http_timeout=1)
        client = flask_app(auth).test_client()
        response = client.get("/machine", headers={"Authorization": f"Bearer {issuer.issue_api_key()}"})
        assert response.status_code == 503
        assert response.get_json()["reason"] == "backend-api-unavailable"
        assert int(response.headers["Retry-After"]) >= 1
        auth.close()
    finally:
        sock.close()


def test_a_machine_only_guard_cannot_be_cookie_only() -> None:
    with pytest.raises(ConfigurationError, match="header"):
        flask_require_auth(accepts_token="api_key", token_sources=["cookie"])(lambda: "never")
