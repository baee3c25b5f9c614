"""A Litestar API protected by Clerk session tokens (and, on some routes, machine tokens).

Configure it from the environment and run it with any ASGI server::

    export CLERK_PUBLISHABLE_KEY=pk_test_...      # or CLERK_JWKS_URI / CLERK_SECRET_KEY
    export CLERK_SECRET_KEY=sk_test_...           # opaque machine tokens (mt_, oat_, ak_)
    uvicorn examples.litestar_app:app --port 8000

Try it without Clerk: ``clerkguard dev-issuer`` prints ``CLERK_*`` variables
for a local issuer and mints tokens. The OpenAPI document at
``/schema/openapi.json`` shows the ``ClerkBearer`` scheme on every guarded
operation.

These are the routes of clerkguard's shared adapter test table, so every
framework example answers the same requests the same way: the table's tests
build their app with `create_app` on a test issuer's ``ClerkAuth``.
``app`` is built on first access, so importing this module for
`create_app` needs no ``CLERK_*`` configuration.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Litestar, Request, Response, WebSocket, get, post, route, websocket
from litestar.di import NamedDependency
from litestar.openapi import OpenAPIConfig

from clerkguard import ClerkAuth, Credential, Session, TokenType
from clerkguard.litestar import ClerkPlugin, require_auth, require_webhook, requires_auth
from clerkguard.rules import has_permission
from clerkguard.webhooks import InMemoryDedupe, WebhookEvent

AnyRequest = Request[Any, Any, Any]
#: ``request.auth`` typed for routes that accept machine tokens too.
CredentialRequest = Request[Any, Credential, Any]

#: The only user ``/async-authorize`` lets through.
ALLOWED_USER = "user_allowed"
#: What services may call ``/machine`` and ``/scoped`` with (Clerk's names).
MACHINE_TOKENS: list[TokenType] = ["m2m_token", "oauth_token", "api_key"]


async def allow_one_user(session: Session, request: AnyRequest) -> bool:
    """An async ``authorize``: it could await a database; here it checks the id."""
    await asyncio.sleep(0)
    return session.user_id == ALLOWED_USER


def crashing_rule(session: Session, request: AnyRequest) -> bool:
    """A buggy rule: clerkguard answers 403 ``authorization-error``, never 500."""
    raise RuntimeError("bug in the rule")


def truthy_rule(session: Session, request: AnyRequest) -> Any:
    """Returns ``1``: only exactly ``True`` allows, so this denies."""
    return 1


def got_litestar_request(session: Session, request: object, /) -> bool:
    """``authorize`` is called as ``authorize(session, request)`` with Litestar's Request."""
    return isinstance(session, Session) and isinstance(request, Request)


def user(request: AnyRequest) -> dict[str, Any]:
    """The JSON most routes answer with."""
    return {"user_id": request.auth.user_id}


@get("/protected")
@require_auth
async def protected(request: AnyRequest) -> dict[str, Any]:
    """Any signed-in user; ``request.auth`` is the verified `Session`."""
    return {"user_id": request.auth.user_id, "org_role": request.auth.org_role}


@get("/admin")
@require_auth(role="admin")
async def admin(request: AnyRequest) -> dict[str, Any]:
    """Organization admins only."""
    return user(request)


@get("/perm")
@require_auth(authorize=has_permission("org:reports:read"))
async def perm(request: AnyRequest) -> dict[str, Any]:
    """Members whose organization grants ``org:reports:read``."""
    return user(request)


@get("/async-authorize")
@require_auth(authorize=allow_one_user)
async def async_authorize(request: AnyRequest) -> dict[str, Any]:
    """An async authorization callback."""
    return user(request)


@get("/authorize-raises")
@require_auth(authorize=crashing_rule)
async def authorize_raises(request: AnyRequest) -> dict[str, Any]:
    """Never reached: the rule raises."""
    return user(request)


@get("/truthy")
@require_auth(authorize=truthy_rule)
async def truthy(request: AnyRequest) -> dict[str, Any]:
    """Never reached: ``1`` is not ``True``."""
    return user(request)


@get("/request-arg")
@require_auth(authorize=got_litestar_request)
async def request_arg(request: AnyRequest) -> dict[str, Any]:
    """Allowed when the callback received Litestar's own request object."""
    return user(request)


@get("/optional")
@require_auth(optional=True)
async def optional(request: AnyRequest) -> dict[str, Any]:
    """Anonymous or signed in (a token that is sent must still be valid)."""
    session: Session | None = request.auth
    return {"user_id": session.user_id if session is not None else None}


@route("/preflight", http_method=["GET", "OPTIONS"])
@require_auth
async def preflight(request: AnyRequest) -> Response[Any]:
    """A handler that declares ``OPTIONS``: the guard answers a preflight (204 + Allow) itself.

    The ``OPTIONS`` branch never runs (a guarded body needs a session).
    """
    if request.method == "OPTIONS":
        return Response(content={"handler": "ran"})
    return Response(content=user(request))


@post("/write", status_code=200)
@require_auth
async def write(request: AnyRequest) -> dict[str, Any]:
    """An unsafe method: cookie tokens need a same-origin or trusted Origin."""
    return user(request)


@get("/sync", sync_to_thread=True)
@require_auth
def sync_handler(request: AnyRequest) -> dict[str, Any]:
    """A sync handler stays sync (it runs in a worker thread, as asked)."""
    return {"user_id": request.auth.user_id, "kind": "sync"}


@get("/async")
@require_auth
async def async_handler(clerk_session: NamedDependency[Session]) -> dict[str, Any]:
    """No ``request`` parameter needed: the plugin injects the session by type."""
    return {"user_id": clerk_session.user_id, "kind": "async"}


def who(credential: Credential) -> dict[str, Any]:
    """Which kind of credential reached the handler, and for whom."""
    if credential.token_type == "session_token":  # type checkers narrow to Session here
        return {"token_type": "session_token", "subject": credential.user_id}
    return {"token_type": credential.token_type, "subject": credential.subject}


@get("/machine")
@require_auth(accepts_token=MACHINE_TOKENS)
async def machine(request: CredentialRequest) -> dict[str, Any]:
    """Services only: M2M tokens, OAuth access tokens, API keys (from the Bearer header)."""
    return who(request.auth)


@get("/any")
@require_auth(accepts_token="any")
async def any_kind(request: CredentialRequest) -> dict[str, Any]:
    """Signed-in users and services alike; ``token_type`` tells them apart."""
    return who(request.auth)


@get("/scoped")
@require_auth(accepts_token=MACHINE_TOKENS, scope="orders:read")
async def scoped(request: CredentialRequest) -> dict[str, Any]:
    """Services granted the ``orders:read`` scope."""
    return who(request.auth)


@get("/me")
async def me(clerk_session: NamedDependency[Session]) -> dict[str, Any]:
    """The plugin's dependency: asking for the session requires a verified token."""
    return {"user_id": clerk_session.user_id, "org_id": clerk_session.org_id}


class ReportsController(Controller):
    """A whole controller behind the native guard."""

    path = "/reports"
    guards = [requires_auth(permission="org:reports:read")]  # noqa: RUF012 - Litestar's layer API

    @get("/")
    async def list_reports(self, request: AnyRequest) -> dict[str, Any]:
        """``request.user`` is the session too (no user loader configured)."""
        return {"user_id": request.user.user_id, "reports": []}

    @get("/public", exclude_from_auth=True)
    async def public(self) -> dict[str, Any]:
        """Opted out of the controller's guard with ``exclude_from_auth``."""
        return {"public": True}


@websocket("/ws", guards=[requires_auth()])
async def ws(socket: WebSocket[Any, Any, Any]) -> None:
    """Websockets use the native guard; it refuses before ``accept()``.

    Cookie handshakes also need a same-origin or trusted ``Origin``: browsers
    send cookies with cross-site websocket handshakes.
    """
    await socket.accept()
    await socket.send_json({"user_id": socket.auth.user_id})
    await socket.close()


@get("/health", sync_to_thread=False)
def health() -> dict[str, Any]:
    """Unprotected."""
    return {"ok": True}


#: The Clerk events ``/webhooks/clerk`` handles; any other type is acknowledged unhandled.
USER_EVENTS = ("user.created", "user.updated", "user.deleted")


def clerk_webhook_route(webhook_secret: str | list[str] | None = None) -> Any:
    """``POST /webhooks/clerk``: one handler (and one dedupe memory) per app."""
    deliveries: dict[str, int] = {}  # event id -> times the handler ran

    @post("/webhooks/clerk", status_code=200)
    @require_webhook(events=USER_EVENTS, secret=webhook_secret, dedupe=InMemoryDedupe())
    async def clerk_webhook(webhook: WebhookEvent) -> dict[str, Any]:
        """A Clerk webhook: verified, user events only, each Svix retry handled once."""
        deliveries[webhook.id] = deliveries.get(webhook.id, 0) + 1
        return {"type": webhook.type, "user_id": webhook.data["id"], "calls": deliveries[webhook.id]}

    return clerk_webhook


def create_app(auth: ClerkAuth | None = None, webhook_secret: str | list[str] | None = None) -> Litestar:
    """The example app; ``auth=None`` configures ``ClerkAuth()`` from the ``CLERK_*`` environment.

    ``webhook_secret``: the signing secret(s) of ``/webhooks/clerk`` (default
    ``CLERK_WEBHOOK_SIGNING_SECRET``)."""
    return Litestar(
        route_handlers=[
            clerk_webhook_route(webhook_secret),
            protected,
            admin,
            perm,
            async_authorize,
            authorize_raises,
            truthy,
            request_arg,
            optional,
            preflight,
            write,
            sync_handler,
            async_handler,
            machine,
            any_kind,
            scoped,
            me,
            ReportsController,
            ws,
            health,
        ],
        plugins=[ClerkPlugin(auth)],
        openapi_config=OpenAPIConfig(title="clerkguard Litestar example", version="1.0.0"),
    )


def __getattr__(name: str) -> Any:
    """``app``, built from the environment on first access (``uvicorn examples.litestar_app:app``)."""
    if name == "app":
        built = globals()["app"] = create_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
