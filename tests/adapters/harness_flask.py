"""The shared table's routes on Flask, through ``app.test_client()``."""

from __future__ import annotations

from typing import Any

import flask

from clerkguard import ClerkAuth
from clerkguard.flask import ClerkGuard, current_auth, get_auth, require_auth
from clerkguard.rules import has_permission

from .harness import (
    PERMISSION,
    Result,
    async_allow_user,
    is_request_of,
    raising_authorize,
    truthy_authorize,
)


def build_app(auth: ClerkAuth) -> flask.Flask:
    """A Flask app serving every route of the harness contract."""
    app = flask.Flask(__name__)
    ClerkGuard(app, auth=auth)

    def me() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/protected")
    @require_auth
    def protected() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "org_role": current_auth.org_role}

    for path, options in {
        "/admin": {"role": "admin"},
        "/perm": {"authorize": has_permission(PERMISSION)},
        "/async-authorize": {"authorize": async_allow_user},
        "/authorize-raises": {"authorize": raising_authorize},
        "/truthy": {"authorize": truthy_authorize},
        "/request-arg": {"authorize": is_request_of(flask.Request)},
    }.items():
        app.add_url_rule(path, path, require_auth(**options)(me))

    @app.get("/optional")
    @require_auth(optional=True)
    def optional() -> dict[str, Any]:
        session = get_auth()
        return {"user_id": session.user_id if session else None}

    @app.route("/preflight", methods=["GET", "OPTIONS"])
    @require_auth
    def preflight() -> Any:
        if flask.request.method == "OPTIONS":
            return "", 204
        return me()

    @app.get("/sync")
    @require_auth
    def sync_view() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "kind": "sync"}

    @app.get("/async")
    @require_auth
    async def async_view() -> dict[str, Any]:
        return {"user_id": current_auth.user_id, "kind": "async"}

    return app


class FlaskHarness:
    """:class:`~tests.adapters.harness.Harness` for Flask."""

    name = "flask"

    def __init__(self, app: flask.Flask) -> None:
        self.app = app
        self.client = app.test_client()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Result:
        """Send one request through Flask's test client."""
        self.client._cookies.clear()  # no state between requests
        for name, value in (cookies or {}).items():
            self.client.set_cookie(name, value)
        response = self.client.open(path, method=method, headers=headers or {})
        return Result(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            json=response.get_json(silent=True),
        )


def make_harness(auth: ClerkAuth) -> FlaskHarness:
    """The Flask harness on ``auth``."""
    return FlaskHarness(build_app(auth))
