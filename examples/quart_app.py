"""A Quart API protected by Clerk session tokens (HTTP and websockets), and machine tokens on some routes.

Configure it from the environment and run it with any ASGI server::

    export CLERK_PUBLISHABLE_KEY=pk_test_...      # or CLERK_JWKS_URI / CLERK_SECRET_KEY
    export CLERK_SECRET_KEY=sk_test_...           # opaque machine tokens (mt_, oat_, ak_)
    hypercorn examples.quart_app:app --bind 127.0.0.1:8000

Try it without Clerk: ``clerkguard dev-issuer`` prints ``CLERK_*`` variables
for a local issuer and mints tokens. The key refresher starts with the server
(``before_serving``) and stops with it (``after_serving``).

These are the routes of clerkguard's shared adapter test table, so every
framework example answers the same requests the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from quart import Blueprint, Quart, Request, request, websocket
from quart.views import MethodView

from clerkguard import ClerkAuth, Credential, Session, TokenType
from clerkguard.quart import (
    ClerkGuard,
    current_auth,
    current_credential,
    current_webhook,
    get_auth,
    guard_blueprint,
    require_auth,
    require_webhook,
)
from clerkguard.rules import has_permission
from clerkguard.webhooks import InMemoryDedupe

#: The only user ``/async-authorize`` lets through.
ALLOWED_USER = "user_allowed"


async def allow_one_user(session: Session, request: Any) -> bool:
    """An async ``authorize``: it could await a database; here it checks the id."""
    await asyncio.sleep(0)
    return session.user_id == ALLOWED_USER


def crashing_rule(session: Session, request: Any) -> bool:
    """A buggy rule: clerkguard answers 403 ``authorization-error``, never 500."""
    raise RuntimeError("bug in the rule")


def truthy_rule(session: Session, request: Any) -> Any:
    """Returns ``1``: only exactly ``True`` allows, so this denies."""
    return 1


def got_quart_request(session: Session, request: object, /) -> bool:
    """``authorize`` is called positionally as ``authorize(session, request)`` with Quart's Request."""
    return isinstance(session, Session) and isinstance(request, Request)


def user() -> dict[str, Any]:
    """The JSON most routes answer with."""
    return {"user_id": current_auth.user_id}


def who(credential: Credential) -> dict[str, Any]:
    """Which kind of credential reached the handler, and for whom."""
    if credential.token_type == "session_token":  # type checkers narrow to Session here
        return {"token_type": "session_token", "subject": credential.user_id}
    return {"token_type": credential.token_type, "subject": credential.subject}


#: The Clerk events ``/webhooks/clerk`` handles; any other type is acknowledged unhandled.
USER_EVENTS = ("user.created", "user.updated", "user.deleted")
#: What services may call ``/machine`` and ``/scoped`` with (Clerk's names).
MACHINE_TOKENS: list[TokenType] = ["m2m_token", "oauth_token", "api_key"]


def create_app(auth: ClerkAuth | None = None, webhook_secret: str | list[str] | None = None) -> Quart:
    """The app on ``auth``; without one, ``ClerkGuard`` builds it from ``CLERK_*`` (config, then env).

    ``webhook_secret``: the Clerk webhook signing secret(s) of ``/webhooks/clerk``
    (default ``CLERK_WEBHOOK_SIGNING_SECRET``). The test suite builds its
    shared-table app from this factory with its own ``auth`` and secrets.
    """
    app = Quart(__name__)
    ClerkGuard(app, auth=auth)
    deliveries: dict[str, int] = {}  # event id -> times the handler ran

    @app.post("/webhooks/clerk")
    @require_webhook(events=USER_EVENTS, secret=webhook_secret, dedupe=InMemoryDedupe())
    async def clerk_webhook() -> dict[str, Any]:
        """A Clerk webhook: verified, user events only, each Svix retry handled once."""
        event = current_webhook
        deliveries[event.id] = deliveries.get(event.id, 0) + 1
        return {"type": event.type, "user_id": event.data["id"], "calls": deliveries[event.id]}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Unprotected."""
        return {"ok": True}

    @app.get("/protected")
    @require_auth  # always BELOW the route decorator
    async def protected() -> dict[str, Any]:
        """Any signed-in user; ``current_auth`` is the verified `Session`."""
        return {"user_id": current_auth.user_id, "org_role": current_auth.org_role}

    @app.get("/admin")
    @require_auth(role="admin")
    async def admin() -> dict[str, Any]:
        """Organization admins only."""
        return user()

    @app.get("/perm")
    @require_auth(authorize=has_permission("org:reports:read"))
    async def perm() -> dict[str, Any]:
        """Members whose organization grants ``org:reports:read``."""
        return user()

    @app.get("/async-authorize")
    @require_auth(authorize=allow_one_user)
    async def async_authorize() -> dict[str, Any]:
        """An async authorization callback."""
        return user()

    @app.get("/authorize-raises")
    @require_auth(authorize=crashing_rule)
    async def authorize_raises() -> dict[str, Any]:
        """Never reached: the rule raises."""
        return user()

    @app.get("/truthy")
    @require_auth(authorize=truthy_rule)
    async def truthy() -> dict[str, Any]:
        """Never reached: ``1`` is not ``True``."""
        return user()

    @app.get("/request-arg")
    @require_auth(authorize=got_quart_request)
    async def request_arg() -> dict[str, Any]:
        """Allowed when the callback received Quart's own request object."""
        return user()

    @app.get("/optional")
    @require_auth(optional=True)
    async def optional() -> dict[str, Any]:
        """Anonymous or signed in (a token that is sent must still be valid)."""
        session = get_auth()
        return {"user_id": session.user_id if session else None}

    @app.route("/preflight", methods=["GET", "OPTIONS"])
    @require_auth
    async def preflight() -> Any:
        """A view that declares ``OPTIONS``: the guard answers a preflight (204 + Allow) itself.

        The ``OPTIONS`` branch never runs (a guarded body needs a session).
        """
        if request.method == "OPTIONS":
            return {"handler": "ran"}
        return user()

    @app.post("/write")
    @require_auth
    async def write() -> dict[str, Any]:
        """An unsafe method: cookie tokens need a same-origin or trusted Origin."""
        return user()

    @app.get("/sync")
    @require_auth
    def sync_view() -> dict[str, Any]:
        """A sync view: Quart runs it in a worker thread; the session is there too."""
        return {**user(), "kind": "sync"}

    @app.get("/async")
    @require_auth
    async def async_view() -> dict[str, Any]:
        """An async view."""
        return {**user(), "kind": "async"}

    @app.get("/machine")
    @require_auth(accepts_token=MACHINE_TOKENS)
    async def machine() -> dict[str, Any]:
        """Services only: M2M tokens, OAuth access tokens, API keys (from the Bearer header)."""
        return who(current_credential)

    @app.get("/any")
    @require_auth(accepts_token="any")
    async def any_kind() -> dict[str, Any]:
        """Signed-in users and services alike; ``token_type`` tells them apart."""
        return who(current_credential)

    @app.get("/scoped")
    @require_auth(accepts_token=MACHINE_TOKENS, scope="orders:read")
    async def scoped() -> dict[str, Any]:
        """Services granted the ``orders:read`` scope."""
        return who(current_credential)

    @app.websocket("/ws")
    @require_auth
    async def ws() -> None:
        """Guarded before ``accept()``: a bad handshake gets the HTTP 401/403."""
        await websocket.accept()
        await websocket.send_json(user())

    class Profile(MethodView):
        """A class-based view: ``decorators`` guards every method."""

        decorators = [require_auth]  # noqa: RUF012 - Quart's class attribute API

        async def get(self) -> dict[str, Any]:
            return user()

    app.add_url_rule("/me", view_func=Profile.as_view("me"))

    reports = Blueprint("reports", __name__, url_prefix="/reports")
    guard_blueprint(reports, permission="org:reports:read")  # every route of the blueprint

    @reports.get("/")
    async def list_reports() -> dict[str, Any]:
        return {**user(), "reports": []}

    app.register_blueprint(reports)
    return app


app = create_app()

if __name__ == "__main__":
    app.run(port=8000)
