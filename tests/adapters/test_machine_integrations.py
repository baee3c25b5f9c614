"""``accepts_token`` beyond ``require_auth``: Starlette's ``ClerkAuthBackend``, Django's middleware,
Litestar's ``provide_credential``.

Each through its framework's own test client, on a real loopback issuer and
fake Backend API. The refusals are compared with what ``require_auth`` answers
for the same token in the same framework, so the core (not the integration)
is what decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client
from django.test.utils import override_settings
from django.urls import path
from litestar import Litestar, get
from litestar import Request as LitestarRequest
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from litestar.testing import TestClient as LitestarClient
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from clerkguard import ClerkAuth, Credential, MachineCredential, Session
from clerkguard.django import build_clerk_middleware
from clerkguard.django import require_auth as dj_require_auth
from clerkguard.litestar import ClerkPlugin, provide_credential
from clerkguard.litestar import require_auth as litestar_require_auth
from clerkguard.starlette import (
    ClerkAuthBackend,
    ClerkGuard,
    ClerkMachine,
    ClerkUser,
    on_auth_error,
)
from clerkguard.starlette import require_auth as starlette_require_auth
from clerkguard.testing import Fault, LocalIssuer

MACHINE = ["m2m_token", "oauth_token", "api_key"]


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as server:
        yield server


@pytest.fixture(autouse=True)
def _healthy(issuer: LocalIssuer) -> Iterator[None]:
    issuer.set_backend_fault(Fault())
    yield
    issuer.set_backend_fault(Fault())


@pytest.fixture
def auth(issuer: LocalIssuer) -> Iterator[ClerkAuth]:
    made = issuer.machine_auth(http_timeout=1)
    yield made
    made.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def kinds(issuer: LocalIssuer) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """``(token, kind, subject, scopes)`` of every machine kind, JWT and opaque."""
    return [
        (issuer.mint_m2m(machine_id="mch_a", scopes=["mch_b"]), "m2m_token", "mch_a", ("mch_b",)),
        (issuer.issue_m2m_token(machine_id="mch_c"), "m2m_token", "mch_c", ()),
        (issuer.mint_oauth(user_id="user_o", scopes=["email"]), "oauth_token", "user_o", ("email",)),
        (
            issuer.issue_oauth_token(user_id="user_p", scopes=["profile"]),
            "oauth_token",
            "user_p",
            ("profile",),
        ),
        (issuer.issue_api_key(subject="org_k", scopes=["orders:read"]), "api_key", "org_k", ("orders:read",)),
    ]


# -- Starlette: ClerkAuthBackend ------------------------------------------------------------------
def who(request: Request) -> JSONResponse:
    user = request.user
    body: dict[str, Any] = {
        "user": type(user).__name__,
        "identity": user.identity if user.is_authenticated else None,
        "display_name": user.display_name,
        "scopes": sorted(request.auth.scopes),
    }
    if isinstance(user, ClerkMachine):
        assert isinstance(user.credential, MachineCredential)
        body["kind"] = user.token_type
    elif isinstance(user, ClerkUser):
        assert user.credential is user.session
        body["kind"] = user.session.token_type
    return JSONResponse(body)


@starlette_require_auth(accepts_token="any")
async def decorated(request: Request) -> JSONResponse:
    return JSONResponse({"kind": request.auth.token_type})


@starlette_require_auth
async def decorated_session(request: Request) -> JSONResponse:
    return JSONResponse({"kind": request.auth.token_type})


@starlette_require_auth(accepts_token=MACHINE)
async def decorated_machine(request: Request) -> JSONResponse:
    return JSONResponse({"kind": request.auth.token_type})


@requires("orders:read")
async def orders(request: Request) -> JSONResponse:
    return JSONResponse({"orders": []})


def starlette_client(auth: ClerkAuth, **options: Any) -> TestClient:
    app = Starlette(
        routes=[
            Route("/who", who),
            Route("/orders", orders),
            Route("/decorated/any", decorated),
            Route("/decorated/session", decorated_session),
            Route("/decorated/machine", decorated_machine),
        ],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=ClerkAuthBackend(**options), on_error=on_auth_error)
        ],
    )
    ClerkGuard(app, auth, manage_lifecycle=False)
    return TestClient(app)


def test_starlette_backend_makes_each_accepted_machine_kind_a_clerk_machine(
    issuer: LocalIssuer, auth: ClerkAuth
) -> None:
    client = starlette_client(auth, accepts_token=MACHINE)
    for token, kind, subject, scopes in kinds(issuer):
        answer = client.get("/who", headers=bearer(token))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "user": "ClerkMachine",
            "identity": subject,
            "display_name": subject,
            "scopes": sorted(["authenticated", *scopes]),
            "kind": kind,
        }
    # The credential's scopes are Starlette scopes: @requires sees them.
    assert (
        client.get("/orders", headers=bearer(issuer.issue_api_key(scopes=["orders:read"]))).status_code == 200
    )
    assert (
        client.get("/orders", headers=bearer(issuer.issue_api_key(scopes=["orders:write"]))).status_code
        == 403
    )


def test_starlette_backend_refuses_a_wrong_kind_as_require_auth_does(
    issuer: LocalIssuer, auth: ClerkAuth
) -> None:
    machine_only = starlette_client(auth, accepts_token=MACHINE)
    session_token = issuer.mint(user_id="user_s")
    refused = machine_only.get("/who", headers=bearer(session_token))
    guarded = machine_only.get("/decorated/machine", headers=bearer(session_token))
    # /decorated/machine's own guard never runs: the middleware refused first. Compare with a
    # client whose middleware takes the session, so the decorator answers.
    direct = starlette_client(auth).get("/decorated/machine", headers=bearer(session_token))
    assert guarded.json() == refused.json() == direct.json()
    assert (refused.status_code, refused.json()["reason"]) == (401, "token-type-not-accepted")
    assert refused.headers["WWW-Authenticate"] == direct.headers["WWW-Authenticate"]
    # A session cookie is not read at all by a machine-only backend: anonymous.
    cookie = {"Cookie": f"__session={session_token}; __client_uat=1"}
    assert machine_only.get("/who", headers=cookie).json()["user"] == "UnauthenticatedUser"


def test_starlette_backend_default_stays_session_only(issuer: LocalIssuer, auth: ClerkAuth) -> None:
    client = starlette_client(auth)
    answer = client.get("/who", headers=bearer(issuer.mint(user_id="user_u", org_role="admin")))
    assert answer.json() == {
        "user": "ClerkUser",
        "identity": "user_u",
        "display_name": "user_u",
        "scopes": ["authenticated", "org:admin"],
        "kind": "session_token",
    }
    for token, *_ in kinds(issuer):
        refused = client.get("/who", headers=bearer(token))
        direct = client.get("/decorated/session", headers=bearer(token))
        assert (refused.status_code, refused.json()) == (direct.status_code, direct.json())
        assert refused.json()["reason"] == "token-type-not-accepted"
    assert client.get("/who").json()["user"] == "UnauthenticatedUser"


def test_starlette_backend_any_takes_sessions_and_machines(issuer: LocalIssuer, auth: ClerkAuth) -> None:
    client = starlette_client(auth, accepts_token="any")
    assert client.get("/who", headers=bearer(issuer.mint())).json()["user"] == "ClerkUser"
    assert client.get("/who", headers=bearer(issuer.mint_m2m())).json()["user"] == "ClerkMachine"
    # With both running, the decorator's credential replaces the middleware's at request.auth.
    assert client.get("/decorated/any", headers=bearer(issuer.issue_api_key())).json() == {"kind": "api_key"}


def test_starlette_backend_answers_503_when_the_backend_api_is_down(
    issuer: LocalIssuer, auth: ClerkAuth
) -> None:
    client = starlette_client(auth, accepts_token="api_key")
    issuer.set_backend_fault(status=502)
    answer = client.get("/who", headers=bearer(issuer.issue_api_key()))
    assert (answer.status_code, answer.json()["reason"]) == (503, "backend-api-unavailable")
    assert int(answer.headers["Retry-After"]) >= 1


# -- Litestar: provide_credential ------------------------------------------------------------------------
@get("/machine", dependencies={"caller": provide_credential(accepts_token=MACHINE)})
async def ls_machine(caller: NamedDependency[MachineCredential]) -> dict[str, Any]:
    return {"type": type(caller).__name__, "kind": caller.token_type, "subject": caller.subject}


@get("/any", dependencies={"caller": provide_credential(accepts_token="any")})
async def ls_any(caller: NamedDependency[SkipValidation[Credential]]) -> dict[str, Any]:
    if caller.token_type == "session_token":
        return {"kind": caller.token_type, "subject": caller.user_id}
    return {"kind": caller.token_type, "subject": caller.subject}


@get("/scoped", dependencies={"caller": provide_credential(accepts_token="api_key", scope="orders:read")})
async def ls_scoped(caller: NamedDependency[MachineCredential]) -> dict[str, Any]:
    return {"subject": caller.subject}


@get("/default", dependencies={"caller": provide_credential()})
async def ls_default(caller: NamedDependency[Session]) -> dict[str, Any]:
    return {"type": type(caller).__name__, "subject": caller.user_id}


@get("/session")
async def ls_session(clerk_session: NamedDependency[Session]) -> dict[str, Any]:
    return {"subject": clerk_session.user_id}


@get("/decorated/machine")
@litestar_require_auth(accepts_token=MACHINE)
async def ls_decorated_machine(request: LitestarRequest[Any, Credential, Any]) -> dict[str, Any]:
    return {"kind": request.auth.token_type}


@pytest.fixture
def litestar(auth: ClerkAuth) -> Iterator[LitestarClient[Litestar]]:
    app = Litestar(
        [ls_machine, ls_any, ls_scoped, ls_default, ls_session, ls_decorated_machine],
        plugins=[ClerkPlugin(auth, manage_lifecycle=False)],
        openapi_config=None,
    )
    with LitestarClient(app) as client:
        yield client


def test_litestar_provider_yields_each_accepted_machine_kind(
    issuer: LocalIssuer, litestar: LitestarClient[Litestar]
) -> None:
    for token, kind, subject, _ in kinds(issuer):
        answer = litestar.get("/machine", headers=bearer(token))
        assert answer.json() == {"type": "MachineCredential", "kind": kind, "subject": subject}
        assert litestar.get("/any", headers=bearer(token)).json() == {"kind": kind, "subject": subject}
    answer = litestar.get("/any", headers=bearer(issuer.mint(user_id="user_s")))
    assert answer.json() == {"kind": "session_token", "subject": "user_s"}
    assert (
        litestar.get("/scoped", headers=bearer(issuer.issue_api_key(scopes=["orders:read"]))).status_code
        == 200
    )
    denied = litestar.get("/scoped", headers=bearer(issuer.issue_api_key(scopes=["orders:write"])))
    assert (denied.status_code, denied.json()["reason"]) == (403, "authorization-denied")


def test_litestar_provider_refuses_a_wrong_kind_as_require_auth_does(
    issuer: LocalIssuer, litestar: LitestarClient[Litestar]
) -> None:
    session_token = issuer.mint()
    refused = litestar.get("/machine", headers=bearer(session_token))
    direct = litestar.get("/decorated/machine", headers=bearer(session_token))
    assert (refused.status_code, refused.json()) == (direct.status_code, direct.json())
    assert (refused.status_code, refused.json()["reason"]) == (401, "token-type-not-accepted")
    assert refused.headers["WWW-Authenticate"] == direct.headers["WWW-Authenticate"]
    # Machine credentials come from the header only: a cookie is no token on a machine route.
    cookie = litestar.get("/machine", headers={"Cookie": f"__session={issuer.mint_m2m()}; __client_uat=1"})
    assert (cookie.status_code, cookie.json()["reason"]) == (401, "token-missing")


def test_litestar_default_provider_and_clerk_session_stay_session_only(
    issuer: LocalIssuer, litestar: LitestarClient[Litestar]
) -> None:
    assert litestar.get("/default", headers=bearer(issuer.mint(user_id="user_d"))).json() == {
        "type": "Session",
        "subject": "user_d",
    }
    for token, *_ in kinds(issuer):
        for route in ("/default", "/session"):
            answer = litestar.get(route, headers=bearer(token))
            assert (answer.status_code, answer.json()["reason"]) == (401, "token-type-not-accepted")


def test_litestar_provider_answers_503_when_the_backend_api_is_down(
    issuer: LocalIssuer, litestar: LitestarClient[Litestar]
) -> None:
    issuer.set_backend_fault(status=502)
    answer = litestar.get("/machine", headers=bearer(issuer.issue_m2m_token()))
    assert (answer.status_code, answer.json()["reason"]) == (503, "backend-api-unavailable")
    assert int(answer.headers["Retry-After"]) >= 1


# -- Django: build_clerk_middleware -------------------------------------------------------------------------
machine_middleware = build_clerk_middleware(accepts_token=MACHINE)
any_middleware = build_clerk_middleware(accepts_token="any")


def _describe(credential: Credential | None) -> dict[str, Any] | None:
    if credential is None:
        return None
    # __class__, not type(): the middleware's request.auth is a lazy proxy
    described = {"type": credential.__class__.__name__, "kind": credential.token_type}
    if credential.token_type == "session_token":
        return {**described, "subject": credential.user_id}
    return {**described, "subject": credential.subject}


def dj_whoami(request: HttpRequest) -> JsonResponse:
    credential = request.auth if request.auth else None  # type: ignore[attr-defined]
    return JsonResponse({"credential": _describe(credential)})


async def dj_awhoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"credential": _describe(await request.aauth())})  # type: ignore[attr-defined]


@dj_require_auth(accepts_token=MACHINE)
def dj_guarded(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"credential": _describe(request.auth)})  # type: ignore[attr-defined]


urlpatterns = [path("whoami", dj_whoami), path("awhoami", dj_awhoami), path("guarded", dj_guarded)]


@contextmanager
def django_project(auth: ClerkAuth, middleware: str) -> Iterator[None]:
    with override_settings(CLERK_AUTH=auth, ROOT_URLCONF=__name__, MIDDLEWARE=[middleware]):
        yield


@pytest.mark.parametrize("middleware", ["machine_middleware", "any_middleware"])
def test_django_middleware_gives_each_accepted_machine_kind(
    issuer: LocalIssuer, auth: ClerkAuth, middleware: str
) -> None:
    with django_project(auth, f"{__name__}.{middleware}"):
        client = Client()
        for token, kind, subject, _ in kinds(issuer):
            expected = {"credential": {"type": "MachineCredential", "kind": kind, "subject": subject}}
            assert client.get("/whoami", headers=bearer(token)).json() == expected
            assert client.get("/awhoami", headers=bearer(token)).json() == expected
        assert client.get("/whoami").json() == {"credential": None}


async def test_django_async_middleware_verifies_machine_tokens_on_the_loop(
    issuer: LocalIssuer, auth: ClerkAuth
) -> None:
    with django_project(auth, f"{__name__}.any_middleware"):
        client = AsyncClient()
        answer = await client.get("/awhoami", headers=bearer(issuer.issue_api_key(subject="org_a")))
        assert answer.json() == {
            "credential": {"type": "MachineCredential", "kind": "api_key", "subject": "org_a"}
        }
        answer = await client.get("/awhoami", headers=bearer(issuer.mint(user_id="user_a")))
        assert answer.json() == {
            "credential": {"type": "Session", "kind": "session_token", "subject": "user_a"}
        }


def test_django_middleware_refuses_a_wrong_kind_for_the_reason_require_auth_gives(
    issuer: LocalIssuer, auth: ClerkAuth, caplog: pytest.LogCaptureFixture
) -> None:
    session_token = issuer.mint()
    with django_project(auth, f"{__name__}.machine_middleware"), caplog.at_level(logging.DEBUG, "clerkguard"):
        client = Client()
        # The middleware never refuses a request: a token of a kind it does not accept is no credential ...
        assert client.get("/whoami", headers=bearer(session_token)).json() == {"credential": None}
        # ... for the reason require_auth answers with (the same guard core decided).
        assert "no credential (token-type-not-accepted)" in caplog.text
        guarded = client.get("/guarded", headers=bearer(session_token))
        assert (guarded.status_code, guarded.json()["reason"]) == (401, "token-type-not-accepted")
        # A session cookie is not read by a machine-only middleware.
        client.cookies.load({"__session": session_token, "__client_uat": "1"})
        assert client.get("/whoami").json() == {"credential": None}


def test_django_default_middleware_stays_session_only(issuer: LocalIssuer, auth: ClerkAuth) -> None:
    with django_project(auth, "clerkguard.django.clerk_middleware"):
        client = Client()
        answer = client.get("/whoami", headers=bearer(issuer.mint(user_id="user_d")))
        assert answer.json() == {
            "credential": {"type": "Session", "kind": "session_token", "subject": "user_d"}
        }
        for token, *_ in kinds(issuer):
            assert client.get("/whoami", headers=bearer(token)).json() == {"credential": None}


def test_django_middleware_during_a_backend_api_outage(
    issuer: LocalIssuer, auth: ClerkAuth, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.set_backend_fault(status=502)
    key = issuer.issue_api_key()
    with django_project(auth, f"{__name__}.machine_middleware"), caplog.at_level(logging.DEBUG, "clerkguard"):
        client = Client()
        # The middleware refuses nobody (no credential, logged why); a guarded view answers 503.
        assert client.get("/whoami", headers=bearer(key)).json() == {"credential": None}
        assert "no credential (backend-api-unavailable)" in caplog.text
        guarded = client.get("/guarded", headers=bearer(key))
        assert (guarded.status_code, guarded.json()["reason"]) == (503, "backend-api-unavailable")
        assert int(guarded["Retry-After"]) >= 1


def test_django_middleware_refuses_endpoint_options() -> None:
    with pytest.raises(TypeError, match="scope"):
        build_clerk_middleware(accepts_token="api_key", scope="orders:read")
    with pytest.raises(TypeError, match="optional"):
        build_clerk_middleware(optional=False)


def test_starlette_backend_refuses_endpoint_options() -> None:
    with pytest.raises(TypeError, match="scope"):
        ClerkAuthBackend(accepts_token="api_key", scope="orders:read")


def test_litestar_openapi_marks_operations_taking_a_credential(auth: ClerkAuth) -> None:
    @get("/optional", dependencies={"caller": provide_credential(accepts_token="any", optional=True)})
    async def optional(caller: NamedDependency[SkipValidation[Credential | None]]) -> None: ...

    @get("/unused", dependencies={"caller": provide_credential(accepts_token="any")})
    async def unused() -> None: ...  # registered here, but not asked for: no credential needed

    app = Litestar(
        [ls_machine, ls_any, optional, unused], plugins=[ClerkPlugin(auth, manage_lifecycle=False)]
    )
    with LitestarClient(app) as client:
        schema = client.get("/schema/openapi.json").json()
    security = {route: item["get"].get("security") for route, item in schema["paths"].items()}
    assert security["/machine"] == security["/any"] == [{"ClerkBearer": []}]
    assert security["/optional"] == [{}, {"ClerkBearer": []}]
    assert security["/unused"] is None
