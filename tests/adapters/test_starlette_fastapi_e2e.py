"""End to end: the Starlette and FastAPI examples under uvicorn, over real HTTP and websockets.

Same scenario as the Litestar/Sanic end-to-end test (whose server helpers
this reuses): configured only through ``CLERK_*`` variables pointing at a
:class:`~clerkguard.testing.LocalIssuer` on loopback, the app fetches keys
once at startup (ClerkGuard's lifespan), many requests fetch nothing more, a
key rotation costs one refetch, and the whole shared table passes over HTTP
(for FastAPI in both forms). Websocket refusals are checked on uvicorn's two
websocket stacks (``websockets`` for FastAPI, ``wsproto`` for Starlette): both
carry the ASGI denial-response extension, so the client reads the same JSON
401 as over HTTP. (The close-1008 fallback for servers without it is pinned
in-process, in ``test_starlette.py``/``test_fastapi.py``.)
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from clerkguard.testing import LocalIssuer

from .harness import Headers, Result
from .table import CASES, mint_tokens
from .test_litestar_sanic_e2e import HTTPHarness, exercise, free_port, serve
from .test_table import assert_answer, send


class PrefixedHTTPHarness(HTTPHarness):
    """The table over HTTP, under a path prefix (FastAPI's dependency form lives at ``/depends``)."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url)
        self.prefix = prefix

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Headers | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Result:
        return super().request(method, self.prefix + path, headers=headers, cookies=cookies)


def uvicorn(target: str, port: int, ws: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws",
        ws,
        "--no-access-log",
    ]


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://") + path


def receive_user(url: str, token: str) -> Any:
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
        return json.loads(ws.recv(timeout=10))


def refused(url: str, headers: dict[str, str] | None = None) -> Any:
    with pytest.raises(InvalidStatus) as info:
        with connect(url, additional_headers=headers or {}, open_timeout=10):
            pass
    return info.value.response


@pytest.fixture
def issuer() -> Any:
    """A private issuer: these tests rotate its key and count its requests."""
    with LocalIssuer() as local:
        yield local


def test_fastapi_example_under_uvicorn(issuer: LocalIssuer) -> None:
    port = free_port()
    with serve(uvicorn("examples.fastapi_app:app", port, "websockets"), issuer, port) as server:
        http = exercise(server, issuer, workers=1)  # decorator form, at the root
        with issuer.auth() as auth:
            tokens = mint_tokens(issuer, auth)
        depends = PrefixedHTTPHarness(server.url, "/depends")
        for case in CASES:
            if case.keys == "up":
                assert_answer(case, send(depends, case, tokens, issuer))
        member = issuer.mint(user_id="user_m", permissions=["org:reports:read"])
        assert http.get("/reports/", member).json() == {"user_id": "user_m", "reports": []}
        assert http.get("/no-request?item=2", member).json() == {"guarded": True, "item": 2}

        # Websockets, both forms: accepted with a token, else the HTTP answer before accept.
        for path in ("/ws", "/depends/ws"):
            assert receive_user(ws_url(server.url, path), member) == {"user_id": "user_m"}
            response = refused(ws_url(server.url, path))
            assert response.status_code == 401
            assert json.loads(response.body)["reason"] == "token-missing"
            assert response.headers["WWW-Authenticate"] == "Bearer"

        schema: dict[str, Any] = http.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ClerkBearer"]["scheme"] == "bearer"
    security = {path: item.get("get", {}).get("security") for path, item in schema["paths"].items()}
    for path in ("/protected", "/sync", "/no-request", "/depends/protected", "/depends/sync", "/reports/"):
        assert security[path] == [{"ClerkBearer": []}], path
    assert security["/health"] is None


def test_starlette_example_under_uvicorn(issuer: LocalIssuer) -> None:
    port = free_port()
    with serve(uvicorn("examples.starlette_app:app", port, "wsproto"), issuer, port) as server:
        http = exercise(server, issuer, workers=1)
        token = issuer.mint(user_id="user_s", org_role="admin")
        assert http.get("/users/me", token).json()["user_id"] == "user_s"
        expired = http.get("/users/whoami", issuer.mint(issued_at=issuer.clock() - 3600, expires_in=60))
        assert expired.status_code == 401
        assert (expired.json()["error"], expired.json()["reason"]) == ("invalid_token", "token-expired")

        assert receive_user(ws_url(server.url, "/ws"), token) == {"user_id": "user_s"}
        response = refused(ws_url(server.url, "/ws"), {"Authorization": "Bearer not-a-jwt"})
        assert response.status_code == 401
        assert json.loads(response.body)["reason"] == "token-malformed"
