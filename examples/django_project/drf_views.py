"""The table's routes as Django REST framework views.

``settings.REST_FRAMEWORK`` makes :class:`clerkguard.drf.ClerkAuthentication`
the authentication class, :class:`~clerkguard.drf.IsClerkAuthenticated` the
default permission and :func:`clerkguard.drf.exception_handler` the error
renderer, so every answer matches the other frameworks'. ``request.user`` is
a :class:`~clerkguard.drf.ClerkUser`, ``request.auth`` the Session (or, on the
views authenticated by ``MachineAuthentication``/``AnyAuthentication``, the
verified credential of any kind).
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clerkguard.drf import Authorized, ClerkAuthentication, HasPermission, HasRole, HasScope
from clerkguard.rules import has_permission

from . import async_views, views
from .rules import MACHINE_TOKENS, allow_one_user, crashing_rule, got_request_of, truthy_rule, who


def user(request: Request) -> Response:
    """The JSON most routes answer with."""
    return Response({"user_id": request.user.id})


@api_view(["GET"])
def protected(request: Request) -> Response:
    """The default permission (IsClerkAuthenticated): any signed-in user."""
    return Response({"user_id": request.auth.user_id, "org_role": request.auth.org_role})


@api_view(["GET"])
@permission_classes([HasRole("admin")])
def admin(request: Request) -> Response:
    """Organization admins only."""
    return user(request)


@api_view(["GET"])
@permission_classes([Authorized(has_permission("org:reports:read"))])
def perm(request: Request) -> Response:
    """Members whose organization grants ``org:reports:read`` (a rule as ``authorize``)."""
    return user(request)


@api_view(["GET"])
@permission_classes([Authorized(allow_one_user)])
def async_authorize(request: Request) -> Response:
    """An async authorization callback (bridged by asgiref)."""
    return user(request)


@api_view(["GET"])
@permission_classes([Authorized(crashing_rule)])
def authorize_raises(request: Request) -> Response:
    """Never reached: the rule raises (403 ``authorization-error``)."""
    return user(request)


@api_view(["GET"])
@permission_classes([Authorized(truthy_rule)])
def truthy(request: Request) -> Response:
    """Never reached: ``1`` is not ``True``."""
    return user(request)


@api_view(["GET"])
@permission_classes([Authorized(got_request_of(Request))])
def request_arg(request: Request) -> Response:
    """Allowed when the callback received DRF's Request."""
    return user(request)


@api_view(["GET"])
@permission_classes([AllowAny])
def optional(request: Request) -> Response:
    """Anonymous or signed in: a token that is sent is still verified (401 if bad)."""
    return Response({"user_id": request.auth.user_id if request.auth else None})


class Preflight(APIView):
    """``OPTIONS`` passes authentication and permissions; DRF then calls the view's ``options``.

    DRF's own ``options`` answers 200 with the view's metadata; this one gives
    the answer ``require_auth`` gives elsewhere: 204 with ``Allow``.
    """

    def get(self, request: Request) -> Response:
        return user(request)

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(status=204)


@api_view(["POST"])
def write(request: Request) -> Response:
    """``POST``: APIView is csrf_exempt; a cookie token needs a same-origin or trusted ``Origin``."""
    return user(request)


@api_view(["GET"])
def sync_view(request: Request) -> Response:
    """DRF views are sync."""
    return Response({"user_id": request.user.id, "kind": "sync"})


class MachineAuthentication(ClerkAuthentication):
    """Services only: M2M tokens, OAuth access tokens, API keys (from the Bearer header)."""

    accepts_token = MACHINE_TOKENS


class AnyAuthentication(ClerkAuthentication):
    """Signed-in users and services alike."""

    accepts_token = "any"


@api_view(["GET"])
@authentication_classes([MachineAuthentication])
def machine(request: Request) -> Response:
    """``request.auth`` is the machine credential (the default permission: any credential)."""
    return Response(who(request.auth))


@api_view(["GET"])
@authentication_classes([AnyAuthentication])
def any_kind(request: Request) -> Response:
    """A session or a machine credential; ``token_type`` tells them apart."""
    return Response(who(request.auth))


@api_view(["GET"])
@authentication_classes([MachineAuthentication])
@permission_classes([HasScope("orders:read")])
def scoped(request: Request) -> Response:
    """Services granted the ``orders:read`` scope."""
    return Response(who(request.auth))


class Reports(APIView):
    """A class-based view with composed permissions."""

    permission_classes = [HasPermission("org:reports:read") | HasRole("admin")]  # noqa: RUF012

    def get(self, request: Request) -> Response:
        return Response({"user_id": request.user.id, "reports": []})

    def post(self, request: Request, *args: Any) -> Response:
        """No CSRF token needed with a Bearer token (APIView is csrf_exempt)."""
        return Response({"user_id": request.user.id, "created": True}, status=201)


urlpatterns = [
    path("protected", protected),
    path("admin", admin),
    path("perm", perm),
    path("async-authorize", async_authorize),
    path("authorize-raises", authorize_raises),
    path("truthy", truthy),
    path("request-arg", request_arg),
    path("optional", optional),
    path("preflight", Preflight.as_view()),
    path("write", write),
    path("sync", sync_view),
    path("machine", machine),
    path("any", any_kind),
    path("scoped", scoped),
    # DRF has no async views: an async endpoint of a DRF project is a Django
    # view guarded by clerkguard.django.require_auth (same settings, same answers).
    path("async", async_views.async_view),
    # A webhook is not an API call: no token, no DRF authentication or permission.
    # A plain Django view guarded by clerkguard.django.require_webhook serves it.
    path("webhooks/clerk", views.clerk_webhook),
    path("reports", Reports.as_view()),
]
