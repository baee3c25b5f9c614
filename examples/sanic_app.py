"""A Sanic API protected by Clerk session tokens (and, on some routes, machine tokens).

Configure it from the environment and run it with Sanic's own server::

    export CLERK_PUBLISHABLE_KEY=pk_test_...      # or CLERK_JWKS_URI / CLERK_SECRET_KEY
    export CLERK_SECRET_KEY=sk_test_...           # opaque machine tokens (mt_, oat_, ak_)
    sanic examples.sanic_app:app --port 8000 --workers 2

Each worker process has its own key cache (one JWKS fetch per worker).
Try it without Clerk: ``clerkguard dev-issuer`` prints ``CLERK_*`` variables
for a local issuer and mints tokens.

These are the routes of clerkguard's shared adapter test table, so every
framework example answers the same requests the same way: the table's tests
build their app with `create_app` on a test issuer's ``ClerkAuth``.
``app`` is built on first access, so importing this module for
`create_app` needs no ``CLERK_*`` configuration.
"""

from __future__ import annotations

import asyncio
from json import dumps
from typing import Any

from sanic import Blueprint, Request, Sanic, Websocket
from sanic.response import HTTPResponse, json
from sanic.views import HTTPMethodView

from clerkguard import ClerkAuth, Credential, Session, TokenType
from clerkguard.rules import has_permission
from clerkguard.sanic import ClerkGuard, require_auth, require_webhook
from clerkguard.webhooks import InMemoryDedupe, WebhookEvent

#: The only user ``/async-authorize`` lets through.
ALLOWED_USER = "user_allowed"
#: The Clerk events ``/webhooks/clerk`` handles; any other type is acknowledged unhandled.
USER_EVENTS = ("user.created", "user.updated", "user.deleted")
#: What services may call ``/machine`` and ``/scoped`` with (Clerk's names).
MACHINE_TOKENS: list[TokenType] = ["m2m_token", "oauth_token", "api_key"]

#: The routes, on a blueprint so that `create_app` can build many apps.
api = Blueprint("api")


async def allow_one_user(session: Session, request: Request) -> bool:
    """An async ``authorize``: it could await a database; here it checks the id."""
    await asyncio.sleep(0)
    return session.user_id == ALLOWED_USER


def crashing_rule(session: Session, request: Request) -> bool:
    """A buggy rule: clerkguard answers 403 ``authorization-error``, never 500."""
    raise RuntimeError("bug in the rule")


def truthy_rule(session: Session, request: Request) -> Any:
    """Returns ``1``: only exactly ``True`` allows, so this denies."""
    return 1


def got_sanic_request(session: Session, request: object, /) -> bool:
    """``authorize`` is called as ``authorize(session, request)`` with Sanic's Request."""
    return isinstance(session, Session) and isinstance(request, Request)


def user(request: Request) -> HTTPResponse:
    """The JSON most routes answer with; ``request.ctx.auth`` is the verified session."""
    return json({"user_id": request.ctx.auth.user_id})


@api.get("/protected")
@require_auth
async def protected(request: Request) -> HTTPResponse:
    """Any signed-in user."""
    session: Session = request.ctx.auth
    return json({"user_id": session.user_id, "org_role": session.org_role})


@api.get("/admin")
@require_auth(role="admin")
async def admin(request: Request) -> HTTPResponse:
    """Organization admins only."""
    return user(request)


@api.get("/perm")
@require_auth(authorize=has_permission("org:reports:read"))
async def perm(request: Request) -> HTTPResponse:
    """Members whose organization grants ``org:reports:read``."""
    return user(request)


@api.get("/async-authorize")
@require_auth(authorize=allow_one_user)
async def async_authorize(request: Request) -> HTTPResponse:
    """An async authorization callback."""
    return user(request)


@api.get("/authorize-raises")
@require_auth(authorize=crashing_rule)
async def authorize_raises(request: Request) -> HTTPResponse:
    """Never reached: the rule raises."""
    return user(request)


@api.get("/truthy")
@require_auth(authorize=truthy_rule)
async def truthy(request: Request) -> HTTPResponse:
    """Never reached: ``1`` is not ``True``."""
    return user(request)


@api.get("/request-arg")
@require_auth(authorize=got_sanic_request)
async def request_arg(request: Request) -> HTTPResponse:
    """Allowed when the callback received Sanic's own request object."""
    return user(request)


@api.get("/optional")
@require_auth(optional=True)
async def optional(request: Request) -> HTTPResponse:
    """Anonymous or signed in (a token that is sent must still be valid)."""
    session: Session | None = request.ctx.auth
    return json({"user_id": session.user_id if session is not None else None})


@api.route("/preflight", methods=["GET", "OPTIONS"])
@require_auth
async def preflight(request: Request) -> HTTPResponse:
    """A handler that declares ``OPTIONS``: the guard answers a preflight (204 + Allow) itself.

    The ``OPTIONS`` branch never runs (a guarded body needs a session).
    """
    if request.method == "OPTIONS":
        return json({"handler": "ran"})
    return user(request)


@api.post("/write")
@require_auth
async def write(request: Request) -> HTTPResponse:
    """An unsafe method: cookie tokens need a same-origin or trusted Origin."""
    return user(request)


@api.get("/sync")
@require_auth
def sync_handler(request: Request) -> HTTPResponse:
    """A sync handler works too."""
    return json({"user_id": request.ctx.auth.user_id, "kind": "sync"})


@api.get("/async")
@require_auth
async def async_handler(request: Request) -> HTTPResponse:
    """An async handler."""
    return json({"user_id": request.ctx.auth.user_id, "kind": "async"})


def who(credential: Credential) -> HTTPResponse:
    """Which kind of credential reached the handler, and for whom."""
    if credential.token_type == "session_token":  # type checkers narrow to Session here
        return json({"token_type": "session_token", "subject": credential.user_id})
    return json({"token_type": credential.token_type, "subject": credential.subject})


@api.get("/machine")
@require_auth(accepts_token=MACHINE_TOKENS)
async def machine(request: Request) -> HTTPResponse:
    """Services only: M2M tokens, OAuth access tokens, API keys (from the Bearer header)."""
    return who(request.ctx.auth)


@api.get("/any")
@require_auth(accepts_token="any")
async def any_kind(request: Request) -> HTTPResponse:
    """Signed-in users and services alike; ``token_type`` tells them apart."""
    return who(request.ctx.auth)


@api.get("/scoped")
@require_auth(accepts_token=MACHINE_TOKENS, scope="orders:read")
async def scoped(request: Request) -> HTTPResponse:
    """Services granted the ``orders:read`` scope."""
    return who(request.ctx.auth)


class ReportsView(HTTPMethodView):
    """A class-based view: every method behind the guard (class-level ``decorators``)."""

    decorators = [require_auth(permission="org:reports:read")]  # noqa: RUF012 - Sanic's API

    async def get(self, request: Request) -> HTTPResponse:
        """List reports."""
        return json({"user_id": request.ctx.auth.user_id, "reports": []})


class ProfileView(HTTPMethodView):
    """Per-method guards: reading is public, writing needs a session."""

    async def get(self, request: Request) -> HTTPResponse:
        """Public."""
        return json({"public": True})

    @require_auth
    async def put(self, request: Request) -> HTTPResponse:
        """``self`` comes first; the guard finds the request by its type."""
        return json({"user_id": request.ctx.auth.user_id, "updated": True})


account = Blueprint("account", url_prefix="/account")


@account.get("/")
@require_auth
async def account_home(request: Request) -> HTTPResponse:
    """Blueprint routes are guarded the same way."""
    return user(request)


@api.websocket("/ws")
@require_auth
async def ws(request: Request, ws: Websocket) -> None:
    """Checked before the upgrade (``ClerkGuard`` refuses with the HTTP 401/403).

    Cookie handshakes also need a same-origin or trusted ``Origin``: browsers
    send cookies with cross-site websocket handshakes.
    """
    await ws.send(dumps({"user_id": request.ctx.auth.user_id}))


@api.get("/health")
async def health(request: Request) -> HTTPResponse:
    """Unprotected."""
    return json({"ok": True})


api.add_route(ReportsView.as_view(), "/reports")
api.add_route(ProfileView.as_view(), "/profile")


def create_app(
    auth: ClerkAuth | None = None,
    name: str = "clerkguard_example",
    webhook_secret: str | list[str] | None = None,
) -> Sanic[Any, Any]:
    """The example app; ``auth=None`` builds ``ClerkAuth()`` from the app's ``CLERK_*``
    config, then the environment. Sanic app names are unique per process.
    ``webhook_secret``: the signing secret(s) of ``/webhooks/clerk`` (default
    ``CLERK_WEBHOOK_SIGNING_SECRET``)."""
    app: Sanic[Any, Any] = Sanic(name)
    deliveries: dict[str, int] = {}  # event id -> times the handler ran

    @app.post("/webhooks/clerk")
    @require_webhook(events=USER_EVENTS, secret=webhook_secret, dedupe=InMemoryDedupe())
    async def clerk_webhook(request: Request) -> HTTPResponse:
        """A Clerk webhook: verified, user events only, each Svix retry handled once."""
        event: WebhookEvent = request.ctx.webhook
        deliveries[event.id] = deliveries.get(event.id, 0) + 1
        return json({"type": event.type, "user_id": event.data["id"], "calls": deliveries[event.id]})

    # Sanic's server refuses a header block over 8 KiB with a plain-text 413 before
    # any handler runs. Clerk tokens stay under 4 KB; with room up to clerkguard's
    # own 8 KiB token limit, an oversized token gets the guard's JSON 401
    # (token-too-large), exactly as in every other framework.
    app.config.REQUEST_MAX_HEADER_SIZE = 16384
    ClerkGuard(app, auth=auth)
    app.blueprint(api)
    app.blueprint(account)
    return app


def __getattr__(name: str) -> Any:
    """``app``, built on first access (``sanic examples.sanic_app:app``)."""
    if name == "app":
        built = globals()["app"] = create_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
