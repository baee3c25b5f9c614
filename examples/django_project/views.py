"""Function views (sync; ``/async`` is async) and a class-based view, guarded by ``require_auth``.

``request.auth`` is the verified :class:`clerkguard.Session` on guarded views;
elsewhere ``clerk_middleware`` makes it a lazy, falsy-when-anonymous value.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

from clerkguard.django import require_auth, require_webhook
from clerkguard.rules import has_permission
from clerkguard.webhooks import InMemoryDedupe

from .rules import MACHINE_TOKENS, allow_one_user, crashing_rule, got_request_of, truthy_rule, who


def user(request: HttpRequest) -> JsonResponse:
    """The JSON most routes answer with."""
    return JsonResponse({"user_id": request.auth.user_id})


def health(request: HttpRequest) -> JsonResponse:
    """Unprotected."""
    return JsonResponse({"ok": True})


@require_auth
def protected(request: HttpRequest) -> JsonResponse:
    """Any signed-in user; ``request.auth`` is the verified Session."""
    session = request.auth
    return JsonResponse({"user_id": session.user_id, "org_role": session.org_role})


@require_auth(role="admin")
def admin(request: HttpRequest) -> JsonResponse:
    """Organization admins only."""
    return user(request)


@require_auth(authorize=has_permission("org:reports:read"))
def perm(request: HttpRequest) -> JsonResponse:
    """Members whose organization grants ``org:reports:read``."""
    return user(request)


@require_auth(authorize=allow_one_user)
def async_authorize(request: HttpRequest) -> JsonResponse:
    """An async authorization callback on a sync view."""
    return user(request)


@require_auth(authorize=crashing_rule)
def authorize_raises(request: HttpRequest) -> JsonResponse:
    """Never reached: the rule raises."""
    return user(request)


@require_auth(authorize=truthy_rule)
def truthy(request: HttpRequest) -> JsonResponse:
    """Never reached: ``1`` is not ``True``."""
    return user(request)


@require_auth(authorize=got_request_of(HttpRequest))
def request_arg(request: HttpRequest) -> JsonResponse:
    """Allowed when the callback received Django's own request object."""
    return user(request)


@require_auth(optional=True)
def optional(request: HttpRequest) -> JsonResponse:
    """Anonymous or signed in (a token that is sent must still be valid)."""
    session = request.auth
    return JsonResponse({"user_id": session.user_id if session else None})


@require_auth
def preflight(request: HttpRequest) -> HttpResponse:
    """A view that handles ``OPTIONS``: the guard answers a preflight (204 + ``Allow``) itself.

    The ``OPTIONS`` branch never runs (a guarded body needs a session); only
    ``require_auth(allow_options=False)`` would authenticate it.
    """
    if request.method == "OPTIONS":
        return JsonResponse({"handler": "ran"})
    return user(request)


@require_auth
def write(request: HttpRequest) -> JsonResponse:
    """``POST``: no CSRF token needed; a cookie token needs a same-origin or trusted ``Origin``."""
    return user(request)


@require_auth
def sync_view(request: HttpRequest) -> JsonResponse:
    """A sync view (under ASGI Django runs it in a thread)."""
    return JsonResponse({"user_id": request.auth.user_id, "kind": "sync"})


@require_auth
async def async_view(request: HttpRequest) -> JsonResponse:
    """An async view: the guard verifies with ``averify`` and never blocks the loop."""
    return JsonResponse({"user_id": request.auth.user_id, "kind": "async"})


@require_auth(accepts_token=MACHINE_TOKENS)
def machine(request: HttpRequest) -> JsonResponse:
    """Services only: M2M tokens, OAuth access tokens, API keys (from the Bearer header)."""
    return JsonResponse(who(request.auth))


@require_auth(accepts_token="any")
def any_kind(request: HttpRequest) -> JsonResponse:
    """Signed-in users and services alike; ``token_type`` tells them apart."""
    return JsonResponse(who(request.auth))


@require_auth(accepts_token=MACHINE_TOKENS, scope="orders:read")
def scoped(request: HttpRequest) -> JsonResponse:
    """Services granted the ``orders:read`` scope."""
    return JsonResponse(who(request.auth))


@method_decorator(require_auth, name="dispatch")  # every method; csrf_exempt comes along
class Notes(View):
    """A class-based view: ``GET`` lists, ``POST`` adds (no CSRF token needed with Bearer)."""

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"user_id": request.auth.user_id, "notes": []})

    def post(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"user_id": request.auth.user_id, "created": True}, status=201)


def whoami(request: HttpRequest) -> JsonResponse:
    """Not guarded: ``clerk_middleware``'s lazy ``request.auth`` (falsy when anonymous)."""
    session = request.auth
    return JsonResponse({"user_id": session.user_id if session else None})


async def awhoami(request: HttpRequest) -> JsonResponse:
    """Not guarded, async: ``await request.aauth()`` (the Session or ``None``)."""
    session = await request.aauth()
    return JsonResponse({"user_id": session.user_id if session else None})


#: The Clerk events ``/webhooks/clerk`` handles; any other type is acknowledged unhandled.
USER_EVENTS = ("user.created", "user.updated", "user.deleted")
#: event id -> times the handler ran (what the shared table checks).
deliveries: dict[str, int] = {}


@require_webhook(events=USER_EVENTS, dedupe=InMemoryDedupe())
def clerk_webhook(request: HttpRequest) -> JsonResponse:
    """A Clerk webhook (secret: ``settings.CLERK_WEBHOOK_SIGNING_SECRET``, then the environment).

    Verified, user events only, each Svix retry handled once; ``csrf_exempt`` by the decorator.
    """
    event = request.clerk_webhook
    deliveries[event.id] = deliveries.get(event.id, 0) + 1
    return JsonResponse({"type": event.type, "user_id": event.data["id"], "calls": deliveries[event.id]})


urlpatterns = [
    path("health", health),
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
    path("sync", sync_view),
    path("async", async_view),
    path("machine", machine),
    path("any", any_kind),
    path("scoped", scoped),
    path("notes", Notes.as_view()),
    path("whoami", whoami),
    path("awhoami", awhoami),
]
