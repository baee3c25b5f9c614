"""A plain Starlette API protected by Clerk session tokens (and, on some routes, machine tokens).

Configure it from the environment and run it with any ASGI server::

    export CLERK_PUBLISHABLE_KEY=pk_test_...      # or CLERK_JWKS_URI / CLERK_SECRET_KEY
    export CLERK_SECRET_KEY=sk_test_...           # opaque machine tokens (mt_, oat_, ak_)
    uvicorn examples.starlette_app:app --port 8000

Try it without Clerk: ``clerkguard dev-issuer`` prints ``CLERK_*`` variables
for a local issuer and mints tokens.

The routes are those of clerkguard's shared adapter test table (function
endpoints, an ``HTTPEndpoint`` and a websocket endpoint under
``@require_auth``), plus ``/users/...`` behind Starlette's own
``AuthenticationMiddleware`` with `ClerkAuthBackend`
and ``@requires``. The table's tests build the app with `create_app` on a
test issuer's ``ClerkAuth``. ``app`` is built on first access, so importing
this module for `create_app` needs no ``CLERK_*`` configuration.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from clerkguard import ClerkAuth, Credential, Session, TokenType
from clerkguard.rules import has_permission
from clerkguard.starlette import ClerkAuthBackend, ClerkGuard, on_auth_error, require_auth, require_webhook
from clerkguard.webhooks import InMemoryDedupe, WebhookEvent

#: The only user ``/async-authorize`` lets through.
ALLOWED_USER = "user_allowed"
#: What services may call ``/machine`` and ``/scoped`` with (Clerk's names).
MACHINE_TOKENS: list[TokenType] = ["m2m_token", "oauth_token", "api_key"]


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


def got_starlette_request(session: Session, request: object, /) -> bool:
    """``authorize`` is called as ``authorize(session, request)`` with Starlette's Request."""
    return isinstance(session, Session) and isinstance(request, Request)


def user(request: Request) -> JSONResponse:
    """The JSON most routes answer with."""
    return JSONResponse({"user_id": request.auth.user_id})


@require_auth
async def protected(request: Request) -> JSONResponse:
    """Any signed-in user; ``request.auth`` is the verified `Session`."""
    return JSONResponse({"user_id": request.auth.user_id, "org_role": request.auth.org_role})


@require_auth(role="admin")
async def admin(request: Request) -> JSONResponse:
    """Organization admins only."""
    return user(request)


@require_auth(authorize=has_permission("org:reports:read"))
async def perm(request: Request) -> JSONResponse:
    """Members whose organization grants ``org:reports:read``."""
    return user(request)


@require_auth(authorize=allow_one_user)
async def async_authorize(request: Request) -> JSONResponse:
    """An async authorization callback."""
    return user(request)


@require_auth(authorize=crashing_rule)
async def authorize_raises(request: Request) -> JSONResponse:
    """Never reached: the rule raises."""
    return user(request)


@require_auth(authorize=truthy_rule)
async def truthy(request: Request) -> JSONResponse:
    """Never reached: ``1`` is not ``True``."""
    return user(request)


@require_auth(authorize=got_starlette_request)
async def request_arg(request: Request) -> JSONResponse:
    """Allowed when the callback received Starlette's own request object."""
    return user(request)


@require_auth(optional=True)
async def optional(request: Request) -> JSONResponse:
    """Anonymous or signed in (a token that is sent must still be valid)."""
    session: Session | None = request.auth
    return JSONResponse({"user_id": session.user_id if session is not None else None})


@require_auth
async def preflight(request: Request) -> JSONResponse:
    """``OPTIONS`` (CORS preflight) gets ``204`` + ``Allow`` from the guard; this never runs for it."""
    return user(request)


@require_auth
async def write(request: Request) -> JSONResponse:
    """An unsafe method: cookie tokens need a same-origin or trusted Origin."""
    return user(request)


@require_auth
def sync_handler(request: Request) -> JSONResponse:
    """A sync endpoint stays sync: Starlette runs it (and its key fetch) in the threadpool."""
    return JSONResponse({"user_id": request.auth.user_id, "kind": "sync"})


def who(credential: Credential) -> JSONResponse:
    """Which kind of credential reached the handler, and for whom."""
    if credential.token_type == "session_token":  # type checkers narrow to Session here
        return JSONResponse({"token_type": "session_token", "subject": credential.user_id})
    return JSONResponse({"token_type": credential.token_type, "subject": credential.subject})


@require_auth(accepts_token=MACHINE_TOKENS)
async def machine(request: Request) -> JSONResponse:
    """Services only: M2M tokens, OAuth access tokens, API keys (from the Bearer header)."""
    return who(request.auth)


@require_auth(accepts_token="any")
async def any_kind(request: Request) -> JSONResponse:
    """Signed-in users and services alike; ``token_type`` tells them apart."""
    return who(request.auth)


@require_auth(accepts_token=MACHINE_TOKENS, scope="orders:read")
async def scoped(request: Request) -> JSONResponse:
    """Services granted the ``orders:read`` scope."""
    return who(request.auth)


class AsyncEndpoint(HTTPEndpoint):
    """An ``HTTPEndpoint``: each method carries its own guard."""

    @require_auth
    async def get(self, request: Request) -> JSONResponse:
        """Signed-in users."""
        return JSONResponse({"user_id": request.auth.user_id, "kind": "async"})


@require_auth
async def ws(websocket: WebSocket) -> None:
    """Refused before ``accept()`` without a valid token (same status and body as HTTP)."""
    await websocket.accept()
    await websocket.send_json({"user_id": websocket.auth.user_id})
    await websocket.close()


@requires("authenticated")
async def me(request: Request) -> JSONResponse:
    """Starlette's own ``@requires`` on ``request.user`` from `ClerkAuthBackend`."""
    return JSONResponse({"user_id": request.user.identity, "scopes": request.auth.scopes})


async def whoami(request: Request) -> JSONResponse:
    """Anonymous users pass the backend; ``request.user.is_authenticated`` tells."""
    return JSONResponse({"user_id": request.user.identity if request.user.is_authenticated else None})


async def health(request: Request) -> JSONResponse:
    """Unprotected."""
    return JSONResponse({"ok": True})


#: The Clerk events ``/webhooks/clerk`` handles; any other type is acknowledged unhandled.
USER_EVENTS = ("user.created", "user.updated", "user.deleted")


def clerk_webhook_endpoint(webhook_secret: str | list[str] | None = None) -> Any:
    """``POST /webhooks/clerk``'s endpoint: one handler (and one dedupe memory) per app."""
    deliveries: dict[str, int] = {}  # event id -> times the handler ran

    @require_webhook(events=USER_EVENTS, secret=webhook_secret, dedupe=InMemoryDedupe())
    async def clerk_webhook(request: Request) -> JSONResponse:
        """A Clerk webhook: verified, user events only, each Svix retry handled once."""
        event: WebhookEvent = request.state.clerk_webhook
        deliveries[event.id] = deliveries.get(event.id, 0) + 1
        return JSONResponse({"type": event.type, "user_id": event.data["id"], "calls": deliveries[event.id]})

    return clerk_webhook


def create_app(auth: ClerkAuth | None = None, webhook_secret: str | list[str] | None = None) -> Starlette:
    """The example app; ``auth=None`` configures ``ClerkAuth()`` from the ``CLERK_*`` environment.

    ``webhook_secret``: the signing secret(s) of ``/webhooks/clerk`` (default
    ``CLERK_WEBHOOK_SIGNING_SECRET``)."""
    backend = Middleware(AuthenticationMiddleware, backend=ClerkAuthBackend(), on_error=on_auth_error)
    app = Starlette(
        routes=[
            Route("/webhooks/clerk", clerk_webhook_endpoint(webhook_secret), methods=["POST"]),
            Route("/protected", protected),
            Route("/admin", admin),
            Route("/perm", perm),
            Route("/async-authorize", async_authorize),
            Route("/authorize-raises", authorize_raises),
            Route("/truthy", truthy),
            Route("/request-arg", request_arg),
            Route("/optional", optional),
            Route("/preflight", preflight, methods=["GET", "OPTIONS"]),
            Route("/write", write, methods=["POST"]),
            Route("/sync", sync_handler),
            Route("/async", AsyncEndpoint),
            Route("/machine", machine),
            Route("/any", any_kind),
            Route("/scoped", scoped),
            WebSocketRoute("/ws", ws),
            Mount("/users", routes=[Route("/me", me), Route("/whoami", whoami)], middleware=[backend]),
            Route("/health", health),
        ]
    )
    ClerkGuard(app, auth)
    return app


def __getattr__(name: str) -> Any:
    """``app``, built from the environment on first access (``uvicorn examples.starlette_app:app``)."""
    if name == "app":
        built = globals()["app"] = create_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
