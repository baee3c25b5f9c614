"""A Sanic API protected by Clerk session tokens.

Configure it from the environment and run it with Sanic's own server::

    export CLERK_PUBLISHABLE_KEY=pk_test_...      # or CLERK_JWKS_URI / CLERK_SECRET_KEY
    sanic examples.sanic_app:app --port 8000 --workers 2

Each worker process has its own key cache (one JWKS fetch per worker).
Try it without Clerk: ``clerkguard dev-issuer`` prints ``CLERK_*`` variables
for a local issuer and mints tokens.

These are the routes of clerkguard's shared adapter test table, so every
framework example answers the same requests the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sanic import Blueprint, Request, Sanic
from sanic.response import HTTPResponse, empty, json
from sanic.views import HTTPMethodView

from clerkguard import Session
from clerkguard.rules import has_permission
from clerkguard.sanic import ClerkGuard, require_auth

#: The only user ``/async-authorize`` lets through.
ALLOWED_USER = "user_allowed"

app = Sanic("clerkguard_example")
# Sanic's server refuses a header block over 8 KiB with a plain-text 413 before
# any handler runs. Clerk tokens stay under 4 KB; with room up to clerkguard's
# own 8 KiB token limit, an oversized token gets the guard's JSON 401
# (token-too-large), exactly as in every other framework.
app.config.REQUEST_MAX_HEADER_SIZE = 16384
ClerkGuard(app)  # ClerkAuth() from the app's CLERK_* config, then the environment


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


def got_sanic_request(session: Session, request: object) -> bool:
    """``authorize`` is called as ``authorize(session, request)`` with Sanic's Request."""
    return isinstance(request, Request)


def user(request: Request) -> HTTPResponse:
    """The JSON most routes answer with; ``request.ctx.auth`` is the verified session."""
    return json({"user_id": request.ctx.auth.user_id})


@app.get("/protected")
@require_auth
async def protected(request: Request) -> HTTPResponse:
    """Any signed-in user."""
    session: Session = request.ctx.auth
    return json({"user_id": session.user_id, "org_role": session.org_role})


@app.get("/admin")
@require_auth(role="admin")
async def admin(request: Request) -> HTTPResponse:
    """Organization admins only."""
    return user(request)


@app.get("/perm")
@require_auth(authorize=has_permission("org:reports:read"))
async def perm(request: Request) -> HTTPResponse:
    """Members whose organization grants ``org:reports:read``."""
    return user(request)


@app.get("/async-authorize")
@require_auth(authorize=allow_one_user)
async def async_authorize(request: Request) -> HTTPResponse:
    """An async authorization callback."""
    return user(request)


@app.get("/authorize-raises")
@require_auth(authorize=crashing_rule)
async def authorize_raises(request: Request) -> HTTPResponse:
    """Never reached: the rule raises."""
    return user(request)


@app.get("/truthy")
@require_auth(authorize=truthy_rule)
async def truthy(request: Request) -> HTTPResponse:
    """Never reached: ``1`` is not ``True``."""
    return user(request)


@app.get("/request-arg")
@require_auth(authorize=got_sanic_request)
async def request_arg(request: Request) -> HTTPResponse:
    """Allowed when the callback received Sanic's own request object."""
    return user(request)


@app.get("/optional")
@require_auth(optional=True)
async def optional(request: Request) -> HTTPResponse:
    """Anonymous or signed in (a token that is sent must still be valid)."""
    session: Session | None = request.ctx.auth
    return json({"user_id": session.user_id if session is not None else None})


@app.route("/preflight", methods=["GET", "OPTIONS"])
@require_auth
async def preflight(request: Request) -> HTTPResponse:
    """``OPTIONS`` (CORS preflight) reaches the handler without authentication."""
    if request.method == "OPTIONS":
        return empty(status=204)
    return user(request)


@app.get("/sync")
@require_auth
def sync_handler(request: Request) -> HTTPResponse:
    """A sync handler works too."""
    return json({"user_id": request.ctx.auth.user_id, "kind": "sync"})


@app.get("/async")
@require_auth
async def async_handler(request: Request) -> HTTPResponse:
    """An async handler."""
    return json({"user_id": request.ctx.auth.user_id, "kind": "async"})


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


@app.get("/health")
async def health(request: Request) -> HTTPResponse:
    """Unprotected."""
    return json({"ok": True})


app.add_route(ReportsView.as_view(), "/reports")
app.add_route(ProfileView.as_view(), "/profile")
app.blueprint(account)
