"""Guarded websockets: refused before the upgrade, cross-site cookie handshakes refused.

Browsers attach cookies to websocket handshakes from any site and CORS does
not apply to them, so a page on another origin can open a socket with the
victim's session (cross-site websocket hijacking). A handshake is a ``GET``,
but the guard treats it as unsafe: a cookie token needs ``Sec-Fetch-Site:
same-origin``, an ``Origin`` naming the request's own host, or a trusted
origin; a Bearer header (which a page cannot make a browser send on a
handshake) and a client sending neither header pass.

Each example app's ``/ws`` route (Quart ``@app.websocket`` + ``@require_auth``,
Litestar ``guards=[requires_auth()]``, Sanic ``@api.websocket`` +
``@require_auth`` with the ``ClerkGuard`` extension) answers every handshake
of :data:`HANDSHAKES`, under its real server over a real socket on loopback
(hypercorn, uvicorn, Sanic's server, and Sanic as an ASGI app under uvicorn)
and through the framework's own test client; the Starlette and FastAPI
examples' ``/ws`` under uvicorn answer the same. A refused handshake is a plain
HTTP answer (status, ``WWW-Authenticate``, JSON body with the reason), never
``101``: the handler, whose first act is to send the user's data, never ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient
from quart.testing.connections import WebsocketResponseError
from sanic import Request, Sanic
from sanic_testing.testing import SanicASGITestClient, SanicTestClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from clerkguard import ClerkAuth
from clerkguard.sanic import require_auth
from clerkguard.testing import LocalIssuer, cookie_header, session_cookies

from . import harness_litestar, harness_quart, harness_sanic
from .conftest import table_auth, table_env
from .table import CROSS_SITE, EVIL_ORIGIN, TRUSTED_ORIGIN
from .test_litestar_sanic_e2e import ROOT, STARTUP_TIMEOUT, Server, free_port, wait_until

COOKIE_USER = "user_ws_cookie"
BEARER_USER = "user_ws_bearer"
#: Bound on one handshake or one message (a hang fails the test instead of blocking it).
IO_TIMEOUT = 10.0
#: An accepted handshake (``101 Switching Protocols``).
SWITCHED = 101
#: The close code of a refusal that can't be an HTTP answer (RFC 6455 7.4.1: policy violation).
POLICY_VIOLATION = 1008


@dataclass(frozen=True)
class Handshake:
    """One websocket handshake and what every framework must answer.

    ``headers`` values are templates: ``{cookies}`` (the signed-in victim's
    ``__session`` + ``__client_uat``), ``{signed_out}`` (the same session
    cookie with ``__client_uat=0``), ``{bearer}``, ``{expired}`` (tokens),
    ``{own_origin}`` (the origin of the ``Host`` the client sends).
    """

    name: str
    headers: Mapping[str, str]
    status: int
    reason: str | None = None
    user: str | None = None

    def render(self, values: Mapping[str, str]) -> dict[str, str]:
        return {name: value.format_map(values) for name, value in self.headers.items()}

    def __str__(self) -> str:
        return self.name


COOKIES = {"Cookie": "{cookies}"}
HANDSHAKES = [
    # Refused before the upgrade.
    Handshake("no-credentials", {}, 401, "token-missing"),
    Handshake("cross-site-cookie", {**COOKIES, **CROSS_SITE}, 403, "cross-site-request"),
    Handshake("cross-site-cookie-origin-only", {**COOKIES, "Origin": EVIL_ORIGIN}, 403, "cross-site-request"),
    Handshake(
        "cross-site-signed-out-cookie",
        {"Cookie": "{signed_out}", **CROSS_SITE},
        401,
        "session-token-without-client-uat",
    ),
    Handshake("expired-bearer", {"Authorization": "Bearer {expired}"}, 401, "token-expired"),
    # The same victim cookies, served.
    Handshake(
        "same-origin-fetch-metadata", {**COOKIES, "Sec-Fetch-Site": "same-origin"}, SWITCHED, user=COOKIE_USER
    ),
    Handshake("matching-origin", {**COOKIES, "Origin": "{own_origin}"}, SWITCHED, user=COOKIE_USER),
    Handshake(
        "trusted-origin",
        {**COOKIES, "Origin": TRUSTED_ORIGIN, "Sec-Fetch-Site": "cross-site"},
        SWITCHED,
        user=COOKIE_USER,
    ),
    Handshake("no-browser-headers", COOKIES, SWITCHED, user=COOKIE_USER),
    # A Bearer header wins over the cookies, and no browser sends one cross-site.
    Handshake(
        "cross-site-bearer",
        {"Authorization": "Bearer {bearer}", **COOKIES, **CROSS_SITE},
        SWITCHED,
        user=BEARER_USER,
    ),
]


def pick(*names: str) -> list[Handshake]:
    """Some of :data:`HANDSHAKES`, for clients that start a server per handshake."""
    chosen = [h for h in HANDSHAKES if h.name in names]
    assert len(chosen) == len(names), names
    return chosen


#: A refusal of each kind (401, 403) and a served cookie and Bearer handshake.
SAMPLE = pick("no-credentials", "cross-site-cookie", "same-origin-fetch-metadata", "cross-site-bearer")


@dataclass
class Answer:
    """What a client saw: an HTTP refusal (status, headers, JSON body) or the socket's first message."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    message: Any = None


@pytest.fixture(scope="module")
def credentials(table_issuer: LocalIssuer) -> dict[str, str]:
    """The template values of :class:`Handshake` (without ``own_origin``)."""
    victim = table_issuer.mint(user_id=COOKIE_USER, expires_in=3600)
    return {
        "cookies": cookie_header(session_cookies(victim)),
        "signed_out": cookie_header(session_cookies(victim, client_uat=0)),
        "bearer": table_issuer.mint(user_id=BEARER_USER, expires_in=3600),
        "expired": table_issuer.mint(issued_at=table_issuer.clock() - 3600, expires_in=60),
    }


def expected_error(handshake: Handshake) -> str:
    """RFC 6750 ``error`` of a refusal: no token, a bad token, or not allowed."""
    if handshake.status == 403:
        return "insufficient_scope"
    return "unauthorized" if handshake.reason == "token-missing" else "invalid_token"


def assert_answer(handshake: Handshake, answer: Answer) -> None:
    """A refusal is the guard's HTTP answer; a served handshake receives the user's data."""
    assert answer.status == handshake.status, (answer.status, answer.body)
    if handshake.status == SWITCHED:
        assert answer.message == {"user_id": handshake.user}
        return
    assert answer.message is None  # no upgrade, so the handler never sent anything
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.body["reason"] == handshake.reason
    assert answer.body["error"] == expected_error(handshake)


# -- real servers, real sockets -------------------------------------------------------------------
def uvicorn(target: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-access-log",
    ]


SERVERS = {
    "quart-hypercorn": [
        sys.executable,
        "-m",
        "hypercorn",
        "examples.quart_app:app",
        "--bind",
        "127.0.0.1:{port}",
    ],
    "litestar-uvicorn": uvicorn("examples.litestar_app:app"),
    "sanic": [
        sys.executable,
        "-m",
        "sanic",
        "examples.sanic_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-motd",
    ],
    # Sanic is also an ASGI app; under an ASGI server its refusals take the ASGI path.
    "sanic-uvicorn": uvicorn("examples.sanic_app:app"),
    # The frameworks added since share the same /ws contract.
    "starlette-uvicorn": uvicorn("examples.starlette_app:app"),
    "fastapi-uvicorn": uvicorn("examples.fastapi_app:app"),
}


@pytest.fixture(scope="module")
def servers(table_issuer: LocalIssuer) -> Iterator[dict[str, Server]]:
    """Every example app under its real server, started at once, configured by ``CLERK_*`` only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env.update(table_env(table_issuer))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    started: dict[str, Server] = {}
    try:
        for name, command in SERVERS.items():
            port = free_port()
            started[name] = Server([part.format(port=port) for part in command], env, port)
        for name, running in started.items():
            wait_until(running.answers, STARTUP_TIMEOUT, f"{name} on {running.url}")
        yield started
    finally:
        for running in started.values():
            running.stop()


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Server:
    return servers[request.param]


async def open_socket(url: str, headers: Mapping[str, str]) -> Answer:
    """A handshake over a real socket with the ``websockets`` client, as a browser would send it."""
    try:
        async with connect(url, additional_headers=dict(headers), open_timeout=IO_TIMEOUT) as socket:
            return Answer(SWITCHED, message=json.loads(await asyncio.wait_for(socket.recv(), IO_TIMEOUT)))
    except InvalidStatus as refused:
        response = refused.response
        return Answer(
            response.status_code,
            {k.lower(): v for k, v in response.headers.raw_items()},
            json.loads(response.body) if response.body else None,
        )


@pytest.mark.parametrize("handshake", HANDSHAKES, ids=str)
async def test_real_server(server: Server, credentials: dict[str, str], handshake: Handshake) -> None:
    host = server.url.removeprefix("http://")
    headers = handshake.render({**credentials, "own_origin": server.url})
    answer = await open_socket(f"ws://{host}/ws", headers)
    try:
        assert_answer(handshake, answer)
    except AssertionError:
        print(f"--- server output ---\n{server.output()}")  # shown on failure
        raise


# -- the frameworks' own test clients ------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth(table_issuer: LocalIssuer) -> Iterator[ClerkAuth]:
    with table_auth(table_issuer) as clerk_auth:
        yield clerk_auth


@pytest.mark.parametrize("handshake", HANDSHAKES, ids=str)
def test_quart_test_client(auth: ClerkAuth, credentials: dict[str, str], handshake: Handshake) -> None:
    app = harness_quart.load_example().create_app(auth)

    async def attempt() -> Answer:
        headers = handshake.render({**credentials, "own_origin": "http://localhost"})  # Quart's test host
        try:
            async with app.test_client().websocket("/ws", headers=headers) as socket:
                return Answer(SWITCHED, message=await asyncio.wait_for(socket.receive_json(), IO_TIMEOUT))
        except WebsocketResponseError as refused:  # Quart answered over HTTP instead of accepting
            response = refused.response
            return Answer(response.status_code, dict(response.headers), await response.get_json())

    assert_answer(handshake, asyncio.run(attempt()))


@pytest.fixture(scope="module")
def litestar_client(auth: ClerkAuth) -> Iterator[TestClient[Any]]:
    with TestClient(harness_litestar.build_app(auth)) as client:
        yield client


@pytest.mark.parametrize("handshake", HANDSHAKES, ids=str)
def test_litestar_test_client(
    litestar_client: TestClient[Any], credentials: dict[str, str], handshake: Handshake
) -> None:
    # Litestar's test client offers no websocket denial response: a refusal is
    # a close before accept, 1008 and the reason code (the plugin's middleware
    # rewrites Litestar's 4500 close when the server can't answer over HTTP).
    own_origin = str(litestar_client.base_url)
    headers = handshake.render({**credentials, "own_origin": own_origin})
    if handshake.status == SWITCHED:
        with litestar_client.websocket_connect("/ws", headers=headers) as socket:
            assert socket.receive_json(timeout=IO_TIMEOUT) == {"user_id": handshake.user}
        return
    with pytest.raises(WebSocketDisconnect) as closed:  # raised on entry: the first message is the close
        litestar_client.websocket_connect("/ws", headers=headers).__enter__()
    assert (closed.value.code, closed.value.detail) == (POLICY_VIOLATION, handshake.reason)


class CapturingASGIClient(SanicASGITestClient):
    """Sanic's ASGI test client, keeping what the app sends on the websocket.

    Its scope has no ``extensions``: the server of an ASGI app that lacks the
    websocket denial-response extension.
    """

    sent: list[dict[str, Any]]

    async def _ws_send(self, message: dict[str, Any]) -> None:  # type: ignore[override]
        self.sent.append(message)


@pytest.mark.parametrize("handshake", HANDSHAKES, ids=str)
def test_sanic_asgi_test_client(auth: ClerkAuth, credentials: dict[str, str], handshake: Handshake) -> None:
    client = CapturingASGIClient(harness_sanic.build_app(auth))
    client.sent = []
    # This client sends no Host header of its own; a server always forwards one.
    headers = {
        "host": "mockserver:1234",
        **handshake.render({**credentials, "own_origin": "http://mockserver:1234"}),
    }
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(client.websocket("/ws", headers=headers))
        loop.run_until_complete(client.aclose())
    finally:
        loop.close()
    kinds = [message["type"] for message in client.sent]
    if handshake.status == SWITCHED:
        assert kinds[:2] == ["websocket.accept", "websocket.send"], kinds
        assert json.loads(client.sent[1]["text"]) == {"user_id": handshake.user}
        return
    # Refused before accept: a close (the server answers the handshake with 403).
    assert client.sent == [{"type": "websocket.close", "code": POLICY_VIOLATION, "reason": handshake.reason}]


@pytest.mark.parametrize("handshake", SAMPLE, ids=str)
def test_sanic_test_client(auth: ClerkAuth, credentials: dict[str, str], handshake: Handshake) -> None:
    # sanic_testing's SanicTestClient starts Sanic's real server for each request
    # and reports a refused handshake only by its status (in a ValueError).
    app = harness_sanic.build_app(auth)
    port = free_port()
    headers = handshake.render({**credentials, "own_origin": f"http://127.0.0.1:{port}"})
    received: list[Any] = []

    async def first_message(socket: Any) -> None:
        received.append(json.loads(await asyncio.wait_for(socket.recv(), IO_TIMEOUT)))
        await asyncio.wait_for(
            socket.recv(), IO_TIMEOUT
        )  # the handler is done: a normal close ends the mimic

    client = SanicTestClient(app, port=port)
    if handshake.status == SWITCHED:
        client.websocket("/ws", extra_headers=headers, mimic=first_message, gather_request=False)
        assert received == [{"user_id": handshake.user}]
        return
    with pytest.raises(ValueError, match=rf"InvalidStatusCode\({handshake.status}, "):
        client.websocket("/ws", extra_headers=headers, mimic=first_message, gather_request=False)
    assert received == []


# -- Sanic without the extension ----------------------------------------------------------------------
@pytest.mark.parametrize("handshake", SAMPLE, ids=str)
def test_sanic_without_extension_closes_with_1008_after_the_upgrade(
    auth: ClerkAuth, credentials: dict[str, str], handshake: Handshake
) -> None:
    """Without ``ClerkGuard`` nothing runs before Sanic's upgrade: the wrapper
    closes the socket with 1008 and the reason code, and the handler never runs."""
    Sanic.test_mode = True
    app: Sanic[Any, Any] = Sanic(f"ws_no_extension_{handshake.name.replace('-', '_')}")
    ran: list[str] = []

    @app.websocket("/ws")
    @require_auth(auth=auth)
    async def ws(request: Request, socket: Any) -> None:
        ran.append(request.ctx.auth.user_id)
        await socket.send(json.dumps({"user_id": request.ctx.auth.user_id}))

    port = free_port()
    outcome: list[Any] = []

    async def first_message(socket: Any) -> None:
        try:
            outcome.append(json.loads(await asyncio.wait_for(socket.recv(), IO_TIMEOUT)))
            await asyncio.wait_for(socket.recv(), IO_TIMEOUT)  # a normal close ends the mimic
        except ConnectionClosedError as closed:
            frame = closed.rcvd  # the server's close frame (None: the connection just dropped)
            outcome.append(None if frame is None else (frame.code, frame.reason))

    headers = handshake.render({**credentials, "own_origin": f"http://127.0.0.1:{port}"})
    client = SanicTestClient(app, port=port)
    if handshake.status == SWITCHED:
        client.websocket("/ws", extra_headers=headers, mimic=first_message, gather_request=False)
        assert (outcome, ran) == ([{"user_id": handshake.user}], [handshake.user])
        return
    # The test client ends a mimic with a send of its own, which fails on the closed socket.
    with pytest.raises(ValueError, match=r"ConnectionClosedError"):
        client.websocket("/ws", extra_headers=headers, mimic=first_message, gather_request=False)
    assert (outcome, ran) == ([(POLICY_VIOLATION, handshake.reason)], [])


# -- keys unavailable: 503, not a bad token -----------------------------------------------------------
@pytest.fixture(scope="module")
def down_auth(table_issuer: LocalIssuer, dead_jwks_uri: str) -> Iterator[ClerkAuth]:
    """A ClerkAuth whose keys can't be fetched (cold cache, a loopback port that refuses)."""
    with table_auth(table_issuer, jwks_uri=dead_jwks_uri, http_timeout=2.0) as clerk_auth:
        yield clerk_auth


def test_keys_down_quart_is_503_with_retry_after(down_auth: ClerkAuth, credentials: dict[str, str]) -> None:
    app = harness_quart.load_example().create_app(down_auth)

    async def attempt() -> Any:
        headers = {"Authorization": f"Bearer {credentials['bearer']}"}
        with pytest.raises(WebsocketResponseError) as refused:
            async with app.test_client().websocket("/ws", headers=headers) as socket:
                await asyncio.wait_for(socket.receive(), IO_TIMEOUT)
        return refused.value.response

    response = asyncio.run(attempt())
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert (asyncio.run(response.get_json()))["reason"] == "jwks-unavailable"


def test_keys_down_litestar_closes_before_accept(down_auth: ClerkAuth, credentials: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {credentials['bearer']}"}
    with TestClient(harness_litestar.build_app(down_auth)) as client:
        with pytest.raises(WebSocketDisconnect) as closed:
            client.websocket_connect("/ws", headers=headers).__enter__()
    assert (closed.value.code, closed.value.detail) == (POLICY_VIOLATION, "jwks-unavailable")


def test_keys_down_sanic_is_503_before_the_upgrade(down_auth: ClerkAuth, credentials: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {credentials['bearer']}"}
    client = SanicTestClient(harness_sanic.build_app(down_auth), port=free_port())
    with pytest.raises(ValueError, match=r"InvalidStatusCode\(503, .*'Retry-After'"):
        client.websocket("/ws", extra_headers=headers, gather_request=False)
