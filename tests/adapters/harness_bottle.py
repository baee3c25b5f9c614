"""The shared table's routes on Bottle, built with ``examples/bottle_adapter.py``.

Bottle is not a built-in integration: this harness proves that the adapter a
user writes from ``docs/adapters.md`` answers the whole shared table exactly
like the built-in ones. Requests go through Bottle's WSGI app with
werkzeug's WSGI test client.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import bottle
from werkzeug.test import Client

from clerkguard import ClerkAuth
from clerkguard.rules import has_permission
from clerkguard.webhooks import InMemoryDedupe, build_require_webhook

from . import harness
from .harness import (
    PERMISSION,
    WEBHOOK_SECRETS,
    Result,
    async_allow_user,
    is_request_of,
    raising_authorize,
    truthy_authorize,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bottle_adapter.py"
#: Where the verified webhook event lives for the rest of the request.
WEBHOOK_ENVIRON_KEY = "clerkguard.webhook"


def webhook_adapter_for(base: type) -> type:
    """The user's Bottle adapter plus the three webhook hooks (the recipe of ``docs/webhooks.md``)."""

    class BottleWebhookAdapter(base):  # type: ignore[misc, valid-type]
        def body(self, request: bottle.BaseRequest, limit: int) -> bytes:
            data: bytes = request.body.read(limit + 1)  # the caller refuses anything over limit
            request.body.seek(0)
            return data

        def json_response(self, request: bottle.BaseRequest, status: int, content: Any) -> Any:
            return bottle.HTTPResponse(json.dumps(content), status, {"Content-Type": "application/json"})

        def store_webhook(self, request: bottle.BaseRequest, event: Any) -> None:
            request.environ[WEBHOOK_ENVIRON_KEY] = event

    return BottleWebhookAdapter


def load_example() -> ModuleType:
    """Import ``examples/bottle_adapter.py`` (examples are scripts, not a package)."""
    name = "clerkguard_example_bottle_adapter"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_app(auth: ClerkAuth) -> bottle.Bottle:
    """A Bottle app serving every route of the harness contract."""
    example = load_example()
    require_auth = example.make_require_auth(auth)
    current_session = example.current_session
    app = bottle.Bottle()

    def me() -> dict[str, Any]:
        return {"user_id": current_session().user_id}

    @app.get("/protected")
    @require_auth
    def protected() -> dict[str, Any]:
        session = current_session()
        return {"user_id": session.user_id, "org_role": session.org_role}

    for path, options in {
        "/admin": {"role": "admin"},
        "/perm": {"authorize": has_permission(PERMISSION)},
        "/async-authorize": {"authorize": async_allow_user},
        "/authorize-raises": {"authorize": raising_authorize},
        "/truthy": {"authorize": truthy_authorize},
        "/request-arg": {"authorize": is_request_of(bottle.BaseRequest)},
    }.items():
        app.route(path, "GET", require_auth(**options)(me))

    @app.get("/optional")
    @require_auth(optional=True)
    def optional() -> dict[str, Any]:
        session = current_session()
        return {"user_id": session.user_id if session else None}

    @app.route("/preflight", ["GET", "OPTIONS"])
    @require_auth
    def preflight() -> Any:
        if bottle.request.method == "OPTIONS":
            return {"handler": "ran"}  # never: the guard answers OPTIONS itself
        return me()

    @app.post("/write")
    @require_auth
    def write() -> dict[str, Any]:
        return me()

    @app.get("/sync")
    @require_auth
    def sync_view() -> dict[str, Any]:
        return {"user_id": current_session().user_id, "kind": "sync"}

    # Bottle has no async views; "/async" is the same sync shape (the contract's
    # answers, not the handler kind, are what the table pins).
    @app.get("/async")
    @require_auth
    def async_view() -> dict[str, Any]:
        return {"user_id": current_session().user_id, "kind": "async"}

    # The machine-token routes are the example's own, as written.
    for route in example.create_app(auth).routes:
        if route.rule in ("/machine", "/any", "/scoped"):
            app.add_route(route)

    require_webhook = build_require_webhook(webhook_adapter_for(example.BottleAdapter)())
    deliveries: dict[str, int] = {}
    user_events = ("user.created", "user.updated", "user.deleted")

    @app.post("/webhooks/clerk")
    @require_webhook(events=user_events, secret=list(WEBHOOK_SECRETS), dedupe=InMemoryDedupe())
    def clerk_webhook() -> dict[str, Any]:
        event = bottle.request.environ[WEBHOOK_ENVIRON_KEY]
        deliveries[event.id] = deliveries.get(event.id, 0) + 1
        return {"type": event.type, "user_id": event.data["id"], "calls": deliveries[event.id]}

    return app


class BottleHarness:
    """:class:`~tests.adapters.harness.Harness` for Bottle (WSGI, werkzeug client)."""

    name = "bottle"

    def __init__(self, app: bottle.Bottle) -> None:
        self.app = app
        self.client = Client(app, use_cookies=False)  # our Cookie header, sent as is

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: harness.Headers | None = None,
        cookies: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Result:
        """Send one request through the WSGI app."""
        sent = harness.header_list(headers, cookies)
        response = self.client.open(path, method=method, headers=sent, data=body)
        return Result(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            json=response.get_json(silent=True) if response.data else None,
        )


def make_harness(auth: ClerkAuth) -> BottleHarness:
    """The Bottle harness on ``auth``."""
    return BottleHarness(build_app(auth))
