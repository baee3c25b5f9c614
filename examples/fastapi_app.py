"""A FastAPI API protected by Clerk session tokens (and machine tokens), in both of clerkguard's forms.

Configure it from the environment and run it with any ASGI server::

    export CLERK_PUBLISHABLE_KEY=pk_test_...      # or CLERK_JWKS_URI / CLERK_SECRET_KEY
    export CLERK_SECRET_KEY=sk_test_...           # opaque machine tokens (mt_, oat_, ak_)
    uvicorn examples.fastapi_app:app --port 8000

Try it without Clerk: ``clerkguard dev-issuer`` prints ``CLERK_*`` variables
for a local issuer and mints tokens. ``/docs`` shows the ``ClerkBearer``
scheme (the "Authorize" button) on the operations that use the dependency.

The routes at the root are those of clerkguard's shared adapter test table,
guarded with the ``@require_auth`` decorator; the same table is served again
under ``/depends`` with the ``requires_auth()`` dependency. The table's tests
build the app with `create_app` on a test issuer's ``ClerkAuth``.
``app`` is built on first access, so importing this module for
`create_app` needs no ``CLERK_*`` configuration.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket

from clerkguard import ClerkAuth, Credential, Session, TokenType
from clerkguard.fastapi import ClerkGuard, require_auth, require_webhook, requires_auth
from clerkguard.rules import has_permission
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


def got_fastapi_request(session: Session, request: object, /) -> bool:
    """``authorize`` is called as ``authorize(session, request)`` with FastAPI's Request."""
    return isinstance(session, Session) and isinstance(request, Request)


def user(session: Session) -> dict[str, Any]:
    """The JSON most routes answer with."""
    return {"user_id": session.user_id}


def who(credential: Credential) -> dict[str, Any]:
    """Which kind of credential reached the handler, and for whom."""
    if credential.token_type == "session_token":  # type checkers narrow to Session here
        return {"token_type": "session_token", "subject": credential.user_id}
    return {"token_type": credential.token_type, "subject": credential.subject}


# -- the decorator form (below the route decorator) ---------------------------------------------
decorated = APIRouter()


@decorated.get("/protected")
@require_auth
async def protected(request: Request) -> dict[str, Any]:
    """Any signed-in user; ``request.auth`` is the verified `Session`."""
    return {"user_id": request.auth.user_id, "org_role": request.auth.org_role}


@decorated.get("/admin")
@require_auth(role="admin")
async def admin(request: Request) -> dict[str, Any]:
    """Organization admins only."""
    return user(request.auth)


@decorated.get("/perm")
@require_auth(authorize=has_permission("org:reports:read"))
async def perm(request: Request) -> dict[str, Any]:
    """Members whose organization grants ``org:reports:read``."""
    return user(request.auth)


@decorated.get("/async-authorize")
@require_auth(authorize=allow_one_user)
async def async_authorize(request: Request) -> dict[str, Any]:
    """An async authorization callback."""
    return user(request.auth)


@decorated.get("/authorize-raises")
@require_auth(authorize=crashing_rule)
async def authorize_raises(request: Request) -> dict[str, Any]:
    """Never reached: the rule raises."""
    return user(request.auth)


@decorated.get("/truthy")
@require_auth(authorize=truthy_rule)
async def truthy(request: Request) -> dict[str, Any]:
    """Never reached: ``1`` is not ``True``."""
    return user(request.auth)


@decorated.get("/request-arg")
@require_auth(authorize=got_fastapi_request)
async def request_arg(request: Request) -> dict[str, Any]:
    """Allowed when the callback received FastAPI's own request object."""
    return user(request.auth)


@decorated.get("/optional")
@require_auth(optional=True)
async def optional(request: Request) -> dict[str, Any]:
    """Anonymous or signed in (a token that is sent must still be valid)."""
    session: Session | None = request.auth
    return {"user_id": session.user_id if session is not None else None}


@decorated.get("/preflight")
@decorated.options("/preflight")
@require_auth
async def preflight(request: Request) -> dict[str, Any]:
    """``OPTIONS`` (CORS preflight) gets ``204`` + ``Allow`` from the guard; this never runs for it."""
    return user(request.auth)


@decorated.post("/write")
@require_auth
async def write(request: Request) -> dict[str, Any]:
    """An unsafe method: cookie tokens need a same-origin or trusted Origin."""
    return user(request.auth)


@decorated.get("/sync")
@require_auth
def sync_handler(request: Request) -> dict[str, Any]:
    """A sync endpoint stays sync: FastAPI runs it (and its key fetch) in the threadpool."""
    return {"user_id": request.auth.user_id, "kind": "sync"}


@decorated.get("/async")
@require_auth
async def async_handler(request: Request) -> dict[str, Any]:
    """An async endpoint verifies on the event loop with the async key fetcher."""
    return {"user_id": request.auth.user_id, "kind": "async"}


@decorated.get("/no-request")
@require_auth
async def no_request(item: int = 0) -> dict[str, Any]:
    """No ``request`` parameter: the decorator adds one for itself, FastAPI's ``item`` stays a query."""
    return {"guarded": True, "item": item}


@decorated.get("/machine")
@require_auth(accepts_token=MACHINE_TOKENS)
async def machine(request: Request) -> dict[str, Any]:
    """Services only: M2M tokens, OAuth access tokens, API keys (from the Bearer header)."""
    return who(request.auth)


@decorated.get("/any")
@require_auth(accepts_token="any")
async def any_kind(request: Request) -> dict[str, Any]:
    """Signed-in users and services alike; ``token_type`` tells them apart."""
    return who(request.auth)


@decorated.get("/scoped")
@require_auth(accepts_token=MACHINE_TOKENS, scope="orders:read")
async def scoped(request: Request) -> dict[str, Any]:
    """Services granted the ``orders:read`` scope."""
    return who(request.auth)


@decorated.websocket("/ws")
@require_auth
async def ws(websocket: WebSocket) -> None:
    """Refused before ``accept()`` without a valid token (same status and body as HTTP)."""
    await websocket.accept()
    await websocket.send_json({"user_id": websocket.auth.user_id})
    await websocket.close()


# -- the dependency form --------------------------------------------------------------------------
depends = APIRouter(prefix="/depends")

SignedIn = Annotated[Session, Depends(requires_auth())]


@depends.get("/protected")
async def d_protected(session: SignedIn) -> dict[str, Any]:
    """The dependency yields the verified `Session`."""
    return {"user_id": session.user_id, "org_role": session.org_role}


@depends.get("/admin")
async def d_admin(session: Annotated[Session, Depends(requires_auth(role="admin"))]) -> dict[str, Any]:
    """Organization admins only."""
    return user(session)


@depends.get("/perm")
async def d_perm(
    session: Annotated[Session, Depends(requires_auth(authorize=has_permission("org:reports:read")))],
) -> dict[str, Any]:
    """Members whose organization grants ``org:reports:read``."""
    return user(session)


@depends.get("/async-authorize")
async def d_async_authorize(
    session: Annotated[Session, Depends(requires_auth(authorize=allow_one_user))],
) -> dict[str, Any]:
    """An async authorization callback."""
    return user(session)


@depends.get("/authorize-raises", dependencies=[Depends(requires_auth(authorize=crashing_rule))])
async def d_authorize_raises() -> dict[str, Any]:
    """Never reached: the rule raises."""
    return {}


@depends.get("/truthy", dependencies=[Depends(requires_auth(authorize=truthy_rule))])
async def d_truthy() -> dict[str, Any]:
    """Never reached: ``1`` is not ``True``."""
    return {}


@depends.get("/request-arg")
async def d_request_arg(
    session: Annotated[Session, Depends(requires_auth(authorize=got_fastapi_request))],
) -> dict[str, Any]:
    """Allowed when the callback received FastAPI's own request object."""
    return user(session)


@depends.get("/optional")
async def d_optional(
    session: Annotated[Session | None, Depends(requires_auth(optional=True))],
) -> dict[str, Any]:
    """Anonymous (``None``) or signed in."""
    return {"user_id": session.user_id if session is not None else None}


@depends.get("/preflight")
@depends.options("/preflight")
async def d_preflight(session: SignedIn) -> dict[str, Any]:
    """``OPTIONS`` gets ``204`` + ``Allow`` from the dependency; this never runs for it."""
    return user(session)


@depends.post("/write")
async def d_write(session: SignedIn) -> dict[str, Any]:
    """An unsafe method: cookie tokens need a same-origin or trusted Origin."""
    return user(session)


@depends.get("/sync")
def d_sync(session: SignedIn) -> dict[str, Any]:
    """A sync endpoint: the (async) dependency verifies on the loop, the endpoint runs in the threadpool."""
    return {"user_id": session.user_id, "kind": "sync"}


@depends.get("/async", dependencies=[Depends(requires_auth())])
async def d_async(request: Request) -> dict[str, Any]:
    """``dependencies=[...]``: the session is also ``request.auth``."""
    return {"user_id": request.auth.user_id, "kind": "async"}


@depends.get("/machine")
async def d_machine(
    credential: Annotated[Credential, Depends(requires_auth(accepts_token=MACHINE_TOKENS))],
) -> dict[str, Any]:
    """Services only; annotate with `Credential` where machine tokens are accepted."""
    return who(credential)


@depends.get("/any")
async def d_any(
    credential: Annotated[Credential, Depends(requires_auth(accepts_token="any"))],
) -> dict[str, Any]:
    """Signed-in users and services alike."""
    return who(credential)


@depends.get("/scoped")
async def d_scoped(
    credential: Annotated[
        Credential, Depends(requires_auth(accepts_token=MACHINE_TOKENS, scope="orders:read"))
    ],
) -> dict[str, Any]:
    """Services granted the ``orders:read`` scope."""
    return who(credential)


@depends.websocket("/ws")
async def d_ws(websocket: WebSocket, session: SignedIn) -> None:
    """The dependency refuses the handshake before ``accept()``."""
    await websocket.accept()
    await websocket.send_json({"user_id": session.user_id})
    await websocket.close()


reports = APIRouter(prefix="/reports", dependencies=[Depends(requires_auth(permission="org:reports:read"))])


@reports.get("/")
async def list_reports(request: Request) -> dict[str, Any]:
    """A whole router behind one dependency."""
    return {"user_id": request.auth.user_id, "reports": []}


#: The Clerk events ``/webhooks/clerk`` handles; any other type is acknowledged unhandled.
USER_EVENTS = ("user.created", "user.updated", "user.deleted")


def webhooks(webhook_secret: str | list[str] | None = None) -> APIRouter:
    """``POST /webhooks/clerk``: one handler (and one dedupe memory) per app."""
    router = APIRouter()
    deliveries: dict[str, int] = {}  # event id -> times the handler ran

    @router.post("/webhooks/clerk")
    @require_webhook(events=USER_EVENTS, secret=webhook_secret, dedupe=InMemoryDedupe())
    async def clerk_webhook(webhook: WebhookEvent) -> dict[str, Any]:
        """A Clerk webhook: verified, user events only, each Svix retry handled once."""
        deliveries[webhook.id] = deliveries.get(webhook.id, 0) + 1
        return {"type": webhook.type, "user_id": webhook.data["id"], "calls": deliveries[webhook.id]}

    return router


def create_app(auth: ClerkAuth | None = None, webhook_secret: str | list[str] | None = None) -> FastAPI:
    """The example app; ``auth=None`` configures ``ClerkAuth()`` from the ``CLERK_*`` environment.

    ``webhook_secret``: the signing secret(s) of ``/webhooks/clerk`` (default
    ``CLERK_WEBHOOK_SIGNING_SECRET``); also served under ``/depends`` for the
    dependency-form table."""
    app = FastAPI(title="clerkguard FastAPI example")
    app.include_router(decorated)
    app.include_router(depends)
    app.include_router(reports)
    receiver = webhooks(webhook_secret)
    app.include_router(receiver)
    app.include_router(receiver, prefix="/depends")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Unprotected."""
        return {"ok": True}

    ClerkGuard(app, auth)
    return app


def __getattr__(name: str) -> Any:
    """``app``, built from the environment on first access (``uvicorn examples.fastapi_app:app``)."""
    if name == "app":
        built = globals()["app"] = create_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
