"""End to end: ``examples/django_project`` under gunicorn (WSGI) and uvicorn (ASGI), over real HTTP.

Each server runs in its own process, configured only through ``CLERK_*``
variables pointing at a :class:`~clerkguard.testing.LocalIssuer` on
loopback. Over HTTP each runs the whole shared table three times (sync
views, async views, DRF), checks that all of that costs one key fetch, and
the project's own routes (class-based views, the middleware's lazy
``request.auth``, a Bearer ``POST`` without a CSRF token). Under uvicorn, a
cold key fetch in an async view must leave the event loop serving others.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from clerkguard.testing import Fault, LocalIssuer

from .table import CASES, mint_tokens
from .test_django import error_of
from .test_litestar_sanic_e2e import HTTPHarness, Server, free_port, serve, wait_until
from .test_table import assert_answer, send
from .test_webhook_table import run_webhook_table

pytest.importorskip("django")
pytest.importorskip("rest_framework")

#: The variants of the table the project mounts (see examples/django_project/urls.py).
PREFIXES = ("", "/async-views", "/drf")


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    """A private issuer: these tests count its requests and slow it down."""
    with LocalIssuer() as local:
        yield local


def gunicorn(port: int) -> list[str]:
    # gunicorn refuses header fields over 8190 bytes itself (a plain 400); the
    # table's 9000-character token must reach the guard to get its JSON 401.
    return [
        *(sys.executable, "-m", "gunicorn", "examples.django_project.wsgi:application"),
        *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"),
        *("--limit-request-field_size", "16384", "--log-level", "warning"),
    ]


def uvicorn(port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "examples.django_project.asgi:application"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--lifespan", "off"),
    ]


def exercise(server: Server, issuer: LocalIssuer) -> None:
    """What the project must do under either server."""
    http = HTTPHarness(server.url)
    # Distinct tokens (real verifications, not cache hits), every variant: one fetch in all.
    for i in range(6):
        for prefix in PREFIXES:
            for path in ("/protected", "/sync", "/async"):
                response = http.get(prefix + path, issuer.mint(user_id=f"user_{i}"))
                assert response.status_code == 200, response.text
                assert response.json()["user_id"] == f"user_{i}"
    assert issuer.request_count == 1

    # The shared table over HTTP, for each variant.
    with issuer.auth() as auth:  # only for the suffixed cookie name
        tokens = mint_tokens(issuer, auth)
    for prefix in PREFIXES:
        variant = HTTPHarness(server.url + prefix)
        for case in CASES:
            if case.keys == "up":
                assert_answer(case, send(variant, case, tokens, issuer))
    # Unknown kids and forgeries in the table are held to the refetch cooldown.
    assert issuer.request_count <= 2
    # Clerk webhooks over HTTP, every variant: CsrfViewMiddleware is on, the
    # webhook view is csrf_exempt; the secret comes from the environment.
    for prefix in PREFIXES:
        run_webhook_table(HTTPHarness(server.url + prefix))

    member = issuer.mint(user_id="user_m", org_role="member", permissions=["org:reports:read"])
    bearer = {"Authorization": f"Bearer {member}"}
    # Bearer POSTs need no CSRF token, though CsrfViewMiddleware is on.
    for path in ("/notes", "/async-views/notes", "/drf/reports"):
        created = http.client.post(path, headers=bearer)
        assert created.status_code == 201, (path, created.text)
        assert created.json() == {"user_id": "user_m", "created": True}
    assert error_of(http.client.post("/notes")) == ("unauthorized", "token-missing")
    # Class-based views: guarded dispatch (sync and async), one guarded async method.
    assert http.get("/notes", member).json() == {"user_id": "user_m", "notes": []}
    assert http.get("/async-views/notes", member).json() == {"user_id": "user_m", "notes": []}
    assert http.get("/async-views/me", member).json() == {"user_id": "user_m"}
    assert http.get("/async-views/me").status_code == 401
    # The middleware: request.auth / await request.aauth() on unguarded views, never refusing.
    for path in ("/whoami", "/awhoami"):
        assert http.get(path, member).json() == {"user_id": "user_m"}
        assert http.get(path).json() == {"user_id": None}
        assert http.get(path, "not-a-token").json() == {"user_id": None}
    # DRF: composed permissions.
    assert http.get("/drf/reports", member).json() == {"user_id": "user_m", "reports": []}
    denied = http.get("/drf/reports", issuer.mint(org_role="member"))
    assert denied.status_code == 403
    assert error_of(denied) == ("insufficient_scope", "authorization-denied")
    assert http.get("/health").json() == {"ok": True}


def test_django_project_under_gunicorn(issuer: LocalIssuer) -> None:
    port = free_port()
    with serve(gunicorn(port), issuer, port) as server:
        exercise(server, issuer)


def test_django_project_under_uvicorn(issuer: LocalIssuer) -> None:
    port = free_port()
    with serve(uvicorn(port), issuer, port) as server:
        exercise(server, issuer)


def test_cold_key_fetch_in_an_async_view_leaves_the_loop_serving(issuer: LocalIssuer) -> None:
    """While an async view waits for a slow JWKS answer, the same loop serves other requests.

    No timing assertion: the other request must *complete* while the slow
    fetch is provably still held by the issuer (had the fetch blocked the
    loop, nothing else could be answered until it returned).
    """
    port = free_port()
    with serve(uvicorn(port), issuer, port) as server:
        issuer.set_fault(Fault(delay=3.0))  # under http_timeout (5 s): the request then succeeds
        token = issuer.mint(user_id="user_cold")
        slow: dict[str, httpx.Response] = {}

        def cold_request() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                slow["response"] = client.get(
                    "/async-views/protected", headers={"Authorization": f"Bearer {token}"}
                )

        thread = threading.Thread(target=cold_request)
        thread.start()
        try:
            wait_until(lambda: issuer.request_count >= 1, 10, "the cold key fetch to reach the issuer")
            with httpx.Client(base_url=server.url, timeout=30) as client:
                started = time.perf_counter()
                other = client.get("/awhoami")  # async view on the same loop, no token
                elapsed = time.perf_counter() - started
            assert other.json() == {"user_id": None}
            assert "response" not in slow, "the cold request finished first: the fetch was not slow"
            print(f"async view answered in {elapsed * 1000:.1f} ms during a 3 s cold key fetch")
        finally:
            thread.join(30)
        assert slow["response"].status_code == 200
        assert slow["response"].json()["user_id"] == "user_cold"
        assert issuer.request_count == 1
