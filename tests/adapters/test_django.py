"""Django specifics beyond the shared table: settings, adapter hooks, CSRF, class-based views, middleware.

Django's settings are the example project's (``tests/conftest.py``); each test
varies them with ``override_settings``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("django")

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, AsyncRequestFactory, Client, RequestFactory
from django.test.utils import override_settings
from django.urls import path, resolve
from django.utils.decorators import method_decorator
from django.views import View

import clerkguard.django as cg_django
from clerkguard import ClerkAuth, ConfigurationError, MissingDependencyError, Session
from clerkguard.django import DjangoAdapter, clerk_middleware, get_clerk_auth, require_auth
from clerkguard.testing import LocalIssuer

Mint = Callable[..., str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Any) -> tuple[str, str]:
    """``(error, reason)`` of a clerkguard error body, which also carries a non-empty ``detail``."""
    body = response.json()
    assert set(body) == {"error", "reason", "detail"}, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body["error"], body["reason"]


@pytest.fixture
def project_auth(clerk_auth: ClerkAuth) -> Iterator[ClerkAuth]:
    """The fixture's ClerkAuth as the project's (``settings.CLERK_AUTH``)."""
    with override_settings(CLERK_AUTH=clerk_auth):
        yield clerk_auth


# -- configuration --------------------------------------------------------------------------------
def test_clerk_settings_build_one_cached_auth_and_a_change_builds_another(
    clerk_issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CLERK_PUBLISHABLE_KEY", "CLERK_JWKS_URI", "CLERK_SECRET_KEY", "CLERK_JWT_KEY"):
        monkeypatch.delenv(name, raising=False)
    env = clerk_issuer.env()
    with override_settings(CLERK_JWKS_URI=env["CLERK_JWKS_URI"], CLERK_ISSUER=clerk_issuer.issuer):
        first = get_clerk_auth()
        assert get_clerk_auth() is first  # one per configuration
        assert first.verify(clerk_issuer.mint(user_id="user_settings")).user_id == "user_settings"
        with override_settings(CLERK_AUTHORIZED_PARTIES=["https://app.example.com"]):
            second = get_clerk_auth()
            assert second is not first
            assert second.authorized_parties == frozenset({"https://app.example.com"})
        # Leaving the override is a change too: a fresh one, the overridden one closed.
        assert get_clerk_auth() is not second


def test_environment_is_the_fallback(clerk_issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in clerk_issuer.env().items():
        monkeypatch.setenv(name, value)
    with override_settings(CLERK_AUTH=None):  # a change: nothing cached from before
        assert get_clerk_auth().verify(clerk_issuer.mint(user_id="user_env")).user_id == "user_env"


def test_clerk_auth_setting_must_be_a_clerk_auth() -> None:
    with override_settings(CLERK_AUTH="not an auth"):
        with pytest.raises(ConfigurationError, match="CLERK_AUTH"):
            get_clerk_auth()


def test_auth_per_guard_wins_over_the_project(clerk_issuer: LocalIssuer, clerk_token: Mint) -> None:
    other = LocalIssuer()
    with other, other.auth() as other_auth, clerk_issuer.auth() as project:

        @require_auth(auth=other_auth)
        def view(request: HttpRequest) -> JsonResponse:
            return JsonResponse({"user_id": request.auth.user_id})  # type: ignore[attr-defined]

        with override_settings(CLERK_AUTH=project):
            ok = view(RequestFactory().get("/", headers=bearer(other.mint(user_id="user_other"))))
            refused = view(RequestFactory().get("/", headers=bearer(clerk_token())))
    assert ok.status_code == 200
    assert refused.status_code == 401


# -- adapter hooks -----------------------------------------------------------------------------------
def test_header_values_wsgi_gets_the_folded_value_asgi_every_line() -> None:
    adapter = DjangoAdapter()
    wsgi = RequestFactory().get("/", headers={"Authorization": "Bearer a"})
    assert adapter.header_values(wsgi, "authorization") == ["Bearer a"]
    assert adapter.header_values(wsgi, "origin") == []
    asgi = AsyncRequestFactory().get("/")
    asgi.scope["headers"] = [(b"authorization", b"Bearer a"), (b"Authorization", b"Bearer b"), (b"x", b"y")]
    assert adapter.header_values(asgi, "authorization") == ["Bearer a", "Bearer b"]
    assert adapter.header_values(asgi, "cookie") == []
    assert adapter.is_websocket(wsgi) is False


def test_options_response_is_djangos_allow_answer_as_204() -> None:
    adapter = DjangoAdapter()
    function_view = RequestFactory().options("/protected")
    function_view.resolver_match = resolve("/protected")
    answer = adapter.options_response(function_view)
    assert (answer.status_code, answer.content) == (204, b"")
    assert answer.headers["Allow"] == "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, TRACE"
    class_view = RequestFactory().options("/notes")
    class_view.resolver_match = resolve("/notes")
    assert adapter.options_response(class_view).headers["Allow"] == "GET, POST, OPTIONS"


def test_find_request_needs_a_request() -> None:
    with pytest.raises(TypeError, match="HttpRequest"):
        DjangoAdapter().find_request(("not a request",), {})


def test_error_response_is_json_with_the_challenge(project_auth: ClerkAuth) -> None:
    response = Client().get("/protected", headers={"Authorization": "Bearer x.y"})
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert error_of(response) == ("invalid_token", "token-malformed")
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_wrapper_keeps_the_view_kind_and_metadata() -> None:
    async def async_view(request: HttpRequest) -> HttpResponse:
        """Docs."""
        return HttpResponse()

    def sync_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    guarded_async, guarded_sync = require_auth(async_view), require_auth(role="admin")(sync_view)
    assert inspect.iscoroutinefunction(guarded_async)
    assert not inspect.iscoroutinefunction(guarded_sync)
    assert guarded_async.__doc__ == "Docs."
    assert guarded_async.__wrapped__ is async_view  # type: ignore[attr-defined]


# -- CSRF ------------------------------------------------------------------------------------------
def test_bearer_post_needs_no_csrf_token(project_auth: ClerkAuth, clerk_token: Mint) -> None:
    client = Client(enforce_csrf_checks=True)  # CsrfViewMiddleware is in the example's MIDDLEWARE
    for url in ("/notes", "/async-views/notes", "/drf/reports"):
        token = clerk_token(user_id="user_post", permissions=["org:reports:read"])
        response = client.post(url, headers=bearer(token))
        assert response.status_code == 201, (url, response.content)
    assert require_auth(lambda request: HttpResponse()).csrf_exempt is True  # type: ignore[attr-defined]


def test_unguarded_views_keep_djangos_csrf(project_auth: ClerkAuth) -> None:
    # /whoami is not guarded: Django's CSRF middleware still protects its POSTs.
    response = Client(enforce_csrf_checks=True).post("/whoami")
    assert response.status_code == 403
    assert b"CSRF" in response.content


def test_cookie_posts_get_the_guards_origin_check_instead_of_djangos_token(
    project_auth: ClerkAuth, clerk_issuer: LocalIssuer
) -> None:
    issued = int(clerk_issuer.clock()) - 10
    client = Client(enforce_csrf_checks=True)
    client.cookies["__session"] = clerk_issuer.mint(user_id="user_browser", issued_at=issued)
    client.cookies["__client_uat"] = str(issued)
    cross_site = client.post(
        "/notes", headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    )
    assert cross_site.status_code == 403
    assert error_of(cross_site) == ("insufficient_scope", "cross-site-request")
    same_origin = client.post(
        "/notes", headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    )
    assert same_origin.status_code == 201, same_origin.content  # no CSRF token


# -- class-based views ---------------------------------------------------------------------------------
async def async_allow(session: Session, request: Any) -> bool:
    return session.user_id == "user_allowed"


@method_decorator(require_auth(authorize=async_allow), name="dispatch")
class AsyncDispatch(View):
    async def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"user_id": request.auth.user_id})  # type: ignore[attr-defined]


@method_decorator(require_auth(authorize=async_allow), name="dispatch")
class SyncDispatch(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"user_id": request.auth.user_id})  # type: ignore[attr-defined]


urlpatterns = [path("async-dispatch", AsyncDispatch.as_view()), path("sync-dispatch", SyncDispatch.as_view())]


@pytest.mark.parametrize("url", ["/async-dispatch", "/sync-dispatch"])
def test_dispatch_guard_awaits_an_async_authorize(
    project_auth: ClerkAuth, clerk_token: Mint, url: str
) -> None:
    # Guarded on the *sync* View.dispatch of an async view, a sync check would run
    # on the view's event loop, where asgiref cannot bridge the async authorize
    # (a 403 authorization-error): the guard treats it as the async view it is.
    with override_settings(ROOT_URLCONF=__name__):
        allowed = Client().get(url, headers=bearer(clerk_token(user_id="user_allowed")))
        denied = Client().get(url, headers=bearer(clerk_token(user_id="user_other")))
    assert allowed.status_code == 200, allowed.content
    assert allowed.json() == {"user_id": "user_allowed"}
    assert error_of(denied) == ("insufficient_scope", "authorization-denied")


# -- middleware ------------------------------------------------------------------------------------
def test_middleware_is_lazy_and_never_refuses(clerk_issuer: LocalIssuer, clerk_token: Mint) -> None:
    with clerk_issuer.auth() as auth, override_settings(CLERK_AUTH=auth):
        seen: list[Any] = []
        handler = clerk_middleware(lambda request: seen.append(request) or HttpResponse())
        request = RequestFactory().get("/", headers=bearer(clerk_token(user_id="user_lazy")))
        handler(request)
        assert clerk_issuer.request_count == 0  # nothing verified: nobody read request.auth
        assert seen[0].auth.user_id == "user_lazy"
        assert clerk_issuer.request_count == 1
        for headers in ({}, bearer("not-a-token"), bearer(clerk_token(expires_in=-100))):
            anonymous = RequestFactory().get("/", headers=headers)
            assert handler(anonymous).status_code == 200
            assert not anonymous.auth  # a lazy None: falsy


async def test_async_middleware_is_chosen_once_and_aauth_verifies_on_the_loop(
    clerk_issuer: LocalIssuer, clerk_token: Mint
) -> None:
    async def view(request: HttpRequest) -> HttpResponse:
        session = await request.aauth()  # type: ignore[attr-defined]
        return HttpResponse(session.user_id if session else "anonymous")

    handler = clerk_middleware(view)
    assert inspect.iscoroutinefunction(handler)
    assert not inspect.iscoroutinefunction(clerk_middleware(lambda request: HttpResponse()))
    assert clerk_middleware.sync_capable  # type: ignore[attr-defined]
    assert clerk_middleware.async_capable  # type: ignore[attr-defined]
    with clerk_issuer.auth() as auth, override_settings(CLERK_AUTH=auth):
        request = AsyncRequestFactory().get("/", headers=bearer(clerk_token(user_id="user_async")))
        response = await handler(request)
        assert response.content == b"user_async"
        assert request.auth.user_id == "user_async"  # type: ignore[attr-defined]  # the same verdict
        assert (await handler(AsyncRequestFactory().get("/"))).content == b"anonymous"


async def test_async_client_reaches_async_views_through_asgi(
    project_auth: ClerkAuth, clerk_token: Mint
) -> None:
    response = await AsyncClient().get("/awhoami", headers=bearer(clerk_token(user_id="user_asgi")))
    assert response.json() == {"user_id": "user_asgi"}


def test_import_without_django_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "clerkguard.django")
    monkeypatch.setitem(sys.modules, "django", None)  # makes `import django` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "clerkguard\[django\]"') as info:
        importlib.import_module("clerkguard.django")
    assert isinstance(info.value, ImportError)
    assert cg_django.require_auth is require_auth
