"""Django REST framework specifics beyond the shared table: user, composition, handler, settings."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("rest_framework")

from django.test import Client
from django.test.utils import override_settings
from django.urls import path
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from clerkguard import ClerkAuth, MissingDependencyError, Session
from clerkguard.drf import (
    Authorized,
    ClerkAuthentication,
    ClerkUser,
    HasFeature,
    HasPermission,
    HasPlan,
    HasRole,
    IsClerkAuthenticated,
)
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


def whoami(request: Request) -> Response:
    user = request.user
    return Response({"id": user.id, "pk": user.pk, "auth": request.auth.user_id, "str": str(user)})


def crash(session: Session, request: Any) -> bool:
    raise RuntimeError("bug")


def view(*permissions: Any, authentication: list[Any] | None = None) -> Any:
    def endpoint(request: Request) -> Response:
        return whoami(request)

    if authentication is not None:
        endpoint = authentication_classes(authentication)(endpoint)
    return api_view(["GET"])(permission_classes(list(permissions))(endpoint))


urlpatterns = [
    path("default", api_view(["GET"])(whoami)),  # the project's defaults (IsClerkAuthenticated)
    path("role-or-perm", view(HasRole("admin") | HasPermission("org:reports:read"))),
    path("not-admin", view(IsClerkAuthenticated & ~HasRole("admin"))),
    path("not-crash", view(~Authorized(crash))),
    path("feature-and-plan", view(HasFeature("org:dashboard") & HasPlan("org:pro"))),
    path("drf-is-authenticated", view(IsAuthenticated)),
    path("no-clerk", view(IsAuthenticated, authentication=[])),
]


@pytest.fixture
def client(clerk_auth: ClerkAuth) -> Iterator[Client]:
    with override_settings(CLERK_AUTH=clerk_auth, ROOT_URLCONF=__name__):
        yield Client()


def test_user_is_a_clerk_user_and_auth_the_session(client: Client, clerk_token: Mint) -> None:
    response = client.get("/default", headers=bearer(clerk_token(user_id="user_1")))
    assert response.json() == {"id": "user_1", "pk": "user_1", "auth": "user_1", "str": "user_1"}


def test_clerk_user_has_djangos_user_interface(clerk_issuer: LocalIssuer) -> None:
    with clerk_issuer.auth() as auth:
        session = auth.verify(clerk_issuer.mint(user_id="user_x"))
    user = ClerkUser(session)
    assert (user.is_authenticated, user.is_anonymous, user.is_staff, user.is_superuser) == (
        True,
        False,
        False,
        False,
    )
    assert user.get_username() == user.pk == user.id == "user_x"
    assert user == ClerkUser(session)
    assert len({user, ClerkUser(session)}) == 1
    assert repr(user) == "ClerkUser('user_x')"


def test_a_machine_caller_is_a_clerk_user_named_by_its_subject(clerk_issuer: LocalIssuer) -> None:
    with clerk_issuer.auth() as auth:
        credential = auth.verify(clerk_issuer.mint_m2m(machine_id="mch_caller"), accepts_token="m2m_token")
    user = ClerkUser(credential)
    assert user.id == user.pk == user.get_username() == "mch_caller"
    assert user.credential is credential
    assert user.is_authenticated


@pytest.mark.parametrize(
    ("url", "claims", "status"),
    [
        ("/role-or-perm", {"org_role": "admin"}, 200),
        ("/role-or-perm", {"org_role": "member", "permissions": ["org:reports:read"]}, 200),
        ("/role-or-perm", {"org_role": "member"}, 403),
        ("/not-admin", {"org_role": "member"}, 200),
        ("/not-admin", {"org_role": "admin"}, 403),
        ("/feature-and-plan", {"features": ["dashboard"], "plan": "pro"}, 200),
        ("/feature-and-plan", {"features": ["dashboard"]}, 403),
        ("/drf-is-authenticated", {}, 200),
    ],
)
def test_permissions_compose(
    client: Client, clerk_token: Mint, url: str, claims: dict[str, Any], status: int
) -> None:
    token = clerk_token(org_id="org_1", **claims)
    response = client.get(url, headers=bearer(token))
    assert response.status_code == status, response.content
    if status == 403:
        assert error_of(response) == ("insufficient_scope", "authorization-denied")
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')


def test_a_crashing_authorize_denies_even_under_not(client: Client, clerk_token: Mint) -> None:
    response = client.get("/not-crash", headers=bearer(clerk_token()))
    assert response.status_code == 403
    assert error_of(response) == ("insufficient_scope", "authorization-error")


def test_no_token_is_401_with_a_bare_challenge(client: Client) -> None:
    for url in ("/role-or-perm", "/drf-is-authenticated", "/default"):
        response = client.get(url)
        assert response.status_code == 401
        assert error_of(response) == ("unauthorized", "token-missing")
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_views_without_clerk_authentication_keep_drfs_answers(client: Client) -> None:
    response = client.get("/no-clerk")
    assert response.status_code == 403  # DRF: no authenticator with a challenge -> 403
    assert "detail" in response.json()


def test_bad_token_body_is_ours_even_with_drfs_own_handler(client: Client, clerk_token: Mint) -> None:
    with override_settings(
        REST_FRAMEWORK={"DEFAULT_AUTHENTICATION_CLASSES": ["clerkguard.drf.ClerkAuthentication"]}
    ):
        expired = client.get("/default", headers=bearer(clerk_token(expires_in=-100)))
    assert expired.status_code == 401
    assert error_of(expired) == ("invalid_token", "token-expired")
    assert expired.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_keys_down_is_503_with_retry_after(clerk_issuer: LocalIssuer, clerk_token: Mint) -> None:
    clerk_issuer.set_fault(status=500)
    with (
        clerk_issuer.auth(http_timeout=1.0) as auth,
        override_settings(CLERK_AUTH=auth, ROOT_URLCONF=__name__),
    ):
        response = Client().get("/default", headers=bearer(clerk_token()))
    assert response.status_code == 503
    assert error_of(response) == ("temporarily_unavailable", "jwks-unavailable")
    assert int(response.headers["Retry-After"]) >= 1


def test_permission_instances_are_their_own_factories() -> None:
    permission = HasRole("admin")
    assert permission() is permission
    with pytest.raises(TypeError):
        Authorized("not callable")  # type: ignore[arg-type]


def test_authentication_class_attributes_are_per_subclass(
    clerk_issuer: LocalIssuer, clerk_token: Mint
) -> None:
    other = LocalIssuer()
    with other, other.auth() as other_auth:

        class OtherInstance(ClerkAuthentication):
            auth = other_auth
            token_sources = ("header",)
            trusted_origins = ("https://admin.example.com",)

        assert OtherInstance.guard() is OtherInstance.guard()
        assert OtherInstance.guard() is not ClerkAuthentication.guard()
        assert OtherInstance.guard().options.auth is other_auth
        assert OtherInstance.guard().options.trusted_origins == ("https://admin.example.com",)

        @api_view(["GET"])
        @authentication_classes([OtherInstance])
        def other_view(request: Request) -> Response:
            return Response({"user_id": request.auth.user_id})

        with override_settings(ROOT_URLCONF=type("URLs", (), {"urlpatterns": [path("o", other_view)]})):
            assert Client().get("/o", headers=bearer(other.mint(user_id="user_o"))).json() == {
                "user_id": "user_o"
            }
            assert Client().get("/o", headers=bearer(clerk_token())).status_code == 401


def test_import_without_drf_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "clerkguard.drf")
    monkeypatch.setitem(sys.modules, "rest_framework", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "clerkguard\[drf\]"') as info:
        importlib.import_module("clerkguard.drf")
    assert isinstance(info.value, ImportError)
