"""The table's routes as ``async def`` views: the guard verifies with ``averify``.

A cold key fetch then waits on the event loop without blocking it, and an
async ``authorize`` is awaited directly. Under WSGI Django runs each async
view on its own event loop; the guard works the same there.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

from clerkguard.django import require_auth, require_webhook
from clerkguard.rules import has_permission
from clerkguard.webhooks import InMemoryDedupe

from . import views
from .rules import MACHINE_TOKENS, allow_one_user, crashing_rule, got_request_of, truthy_rule, who


def user(request: HttpRequest) -> JsonResponse:
    """The JSON most routes answer with."""
    return JsonResponse({"user_id": request.auth.user_id})


@require_auth
async def protected(request: HttpRequest) -> JsonResponse:
    """Any signed-in user."""
    session = request.auth
    return JsonResponse({"user_id": session.user_id, "org_role": session.org_role})


@require_auth(role="admin")
async def admin(request: HttpRequest) -> JsonResponse:
    """Organization admins only."""
    return user(request)


@require_auth(authorize=has_permission("org:reports:read"))
async def perm(request: HttpRequest) -> JsonResponse:
    """Members whose organization grants ``org:reports:read``."""
    return user(request)


@require_auth(authorize=allow_one_user)
async def async_authorize(request: HttpRequest) -> JsonResponse:
    """An async authorization callback, awaited on the view's loop."""
    return user(request)


@require_auth(authorize=crashing_rule)
async def authorize_raises(request: HttpRequest) -> JsonResponse:
    """Never reached: the rule raises."""
    return user(request)


@require_auth(authorize=truthy_rule)
async def truthy(request: HttpRequest) -> JsonResponse:
    """Never reached: ``1`` is not ``True``."""
    return user(request)


@require_auth(authorize=got_request_of(HttpRequest))
async def request_arg(request: HttpRequest) -> JsonResponse:
    """Allowed when the callback received Django's own request object."""
    return user(request)


@require_auth(optional=True)
async def optional(request: HttpRequest) -> JsonResponse:
    """Anonymous or signed in."""
    session = request.auth
    return JsonResponse({"user_id": session.user_id if session else None})


@require_auth
async def preflight(request: HttpRequest) -> HttpResponse:
    """A view that handles ``OPTIONS``: the guard answers a preflight (204 + ``Allow``) itself.

    The ``OPTIONS`` branch never runs (a guarded body needs a session); only
    ``require_auth(allow_options=False)`` would authenticate it.
    """
    if request.method == "OPTIONS":
        return JsonResponse({"handler": "ran"})
    return user(request)


@require_auth
async def write(request: HttpRequest) -> JsonResponse:
    """``POST``: no CSRF token needed; a cookie token needs a same-origin or trusted ``Origin``."""
    return user(request)


@require_auth
async def async_view(request: HttpRequest) -> JsonResponse:
    """An async view."""
    return JsonResponse({"user_id": request.auth.user_id, "kind": "async"})


class Profile(View):
    """An async class-based view with one guarded method (``method_decorator`` on ``get``)."""

    @method_decorator(require_auth)
    async def get(self, request: HttpRequest) -> JsonResponse:
        return user(request)


@require_auth(accepts_token=MACHINE_TOKENS)
async def machine(request: HttpRequest) -> JsonResponse:
    """Services only: M2M tokens, OAuth access tokens, API keys (from the Bearer header)."""
    return JsonResponse(who(request.auth))


@require_auth(accepts_token="any")
async def any_kind(request: HttpRequest) -> JsonResponse:
    """Signed-in users and services alike; ``token_type`` tells them apart."""
    return JsonResponse(who(request.auth))


@require_auth(accepts_token=MACHINE_TOKENS, scope="orders:read")
async def scoped(request: HttpRequest) -> JsonResponse:
    """Services granted the ``orders:read`` scope."""
    return JsonResponse(who(request.auth))


@method_decorator(require_auth, name="dispatch")
class Notes(View):
    """An async class-based view guarded on ``dispatch``."""

    async def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"user_id": request.auth.user_id, "notes": []})

    async def post(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"user_id": request.auth.user_id, "created": True}, status=201)


@require_webhook(events=views.USER_EVENTS, dedupe=InMemoryDedupe())
async def clerk_webhook(request: HttpRequest) -> JsonResponse:
    """The Clerk webhook as an async view (the dedupe hook may be async too)."""
    event = request.clerk_webhook
    views.deliveries[event.id] = views.deliveries.get(event.id, 0) + 1
    return JsonResponse(
        {"type": event.type, "user_id": event.data["id"], "calls": views.deliveries[event.id]}
    )


urlpatterns = [
    path("webhooks/clerk", clerk_webhook),
    path("protected", protected),
    path("admin", admin),
    path("perm", perm),
    path("async-authorize", async_authorize),
    path("authorize-raises", authorize_raises),
    path("truthy", truthy),
    path("request-arg", request_arg),
    path("optional", optional),
    path("preflight", preflight),
    path("write", write),
    path("sync", views.sync_view),  # the table's sync handler: the one sync view here
    path("async", async_view),
    path("machine", machine),
    path("any", any_kind),
    path("scoped", scoped),
    path("notes", Notes.as_view()),
    path("me", Profile.as_view()),
]
