"""Write an adapter for your framework: Bottle on clerkguard's public adapter API.

Everything framework-specific is the six hooks of ``BottleAdapter``; token
extraction, verification, rules, ``authorize`` and every error decision come
from `clerkguard.adapters`, exactly as for the built-in Flask and Quart
adapters. ``docs/adapters.md`` walks through this file; the test
``tests/adapters/test_bottle_adapter.py`` runs it (and the shared request
table) through Bottle's WSGI app.

Run it against a local issuer::

    clerkguard dev-issuer          # prints CLERK_* variables and a token
    export CLERK_PUBLISHABLE_KEY=... CLERK_JWKS_URI=...
    python examples/bottle_adapter.py
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/protected
"""

from __future__ import annotations

import json
import os
from typing import Any

import bottle

from clerkguard import AuthError, ClerkAuth, Credential, Session, TokenType
from clerkguard.adapters import Adapter, RequireAuth, build_require_auth
from clerkguard.rules import has_permission

#: Where the verified session lives for the rest of the request.
ENVIRON_KEY = "clerkguard.session"
#: What services may call ``/machine`` and ``/scoped`` with (Clerk's names).
MACHINE_TOKENS: list[TokenType] = ["m2m_token", "oauth_token", "api_key"]


class BottleAdapter(Adapter[bottle.BaseRequest]):
    """The hooks clerkguard needs from Bottle."""

    def header(self, request: bottle.BaseRequest, name: str) -> str | None:
        """Bottle's header lookup is case-insensitive already."""
        value: str | None = request.get_header(name)
        return value

    def method(self, request: bottle.BaseRequest) -> str:
        """The HTTP method, upper case."""
        return str(request.method)

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bottle.BaseRequest:
        """Bottle handlers take URL parameters only; the request is a thread-local."""
        return bottle.request

    def store(self, request: bottle.BaseRequest, session: Session | None) -> None:
        """Keep the session in the WSGI environ, which lives exactly one request."""
        request.environ[ENVIRON_KEY] = session

    def reject(self, request: bottle.BaseRequest, error: AuthError) -> Any:
        """Answer with clerkguard's JSON body and headers (returned, so Bottle sends it)."""
        headers = {**error.headers(), "Content-Type": "application/json"}
        return bottle.HTTPResponse(json.dumps(error.to_dict()), error.status, headers)

    def options_response(self, request: bottle.BaseRequest) -> Any:
        """Bottle has no default OPTIONS answer: ``204`` with the methods of the matched path."""
        methods = {"OPTIONS"}
        for route in request.app.routes:
            if route.rule == request.route.rule:
                methods.add(route.method)
        return bottle.HTTPResponse(status=204, headers={"Allow": ", ".join(sorted(methods))})


def current_session() -> Session | None:
    """The session of the current request (``None`` on optional routes without one)."""
    session: Session | None = bottle.request.environ.get(ENVIRON_KEY)
    return session


def current_credential() -> Credential | None:
    """The same object, typed for routes that accept machine tokens (``accepts_token=``)."""
    credential: Credential | None = bottle.request.environ.get(ENVIRON_KEY)
    return credential


def who() -> dict[str, Any]:
    """Which kind of credential reached the handler, and for whom."""
    credential = current_credential()
    assert credential is not None  # guarded routes always have one
    if credential.token_type == "session_token":  # type checkers narrow to Session here
        return {"token_type": "session_token", "subject": credential.user_id}
    return {"token_type": credential.token_type, "subject": credential.subject}


def make_require_auth(auth: ClerkAuth) -> RequireAuth:
    """A ``require_auth`` decorator for Bottle, bound to one `ClerkAuth`."""
    return build_require_auth(BottleAdapter(auth=auth))


def create_app(auth: ClerkAuth) -> bottle.Bottle:
    """A small API: the same routes as the Flask and Quart examples."""
    app = bottle.Bottle()
    require_auth = make_require_auth(auth)

    def user() -> dict[str, Any]:
        session = current_session()
        assert session is not None  # guarded routes always have one
        return {"user_id": session.user_id, "org_role": session.org_role}

    @app.get("/public")
    def public() -> dict[str, Any]:
        return {"hello": "world"}

    @app.get("/protected")
    @require_auth
    def protected() -> dict[str, Any]:
        return user()

    @app.get("/admin")
    @require_auth(role="admin")
    def admin() -> dict[str, Any]:
        return user()

    @app.get("/reports")
    @require_auth(authorize=has_permission("org:reports:read"))
    def reports() -> dict[str, Any]:
        return {"reports": [], **user()}

    @app.get("/maybe")
    @require_auth(optional=True)
    def maybe() -> dict[str, Any]:
        session = current_session()
        return {"user_id": session.user_id if session else None}

    # Machine tokens: the adapter needs nothing more (they come from the Bearer header).
    @app.get("/machine")
    @require_auth(accepts_token=MACHINE_TOKENS)
    def machine() -> dict[str, Any]:
        return who()

    @app.get("/any")
    @require_auth(accepts_token="any")
    def any_kind() -> dict[str, Any]:
        return who()

    @app.get("/scoped")
    @require_auth(accepts_token=MACHINE_TOKENS, scope="orders:read")
    def scoped() -> dict[str, Any]:
        return who()

    return app


if __name__ == "__main__":
    bottle.run(create_app(ClerkAuth()), host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
