"""Quart: every handler shape (websockets too), lifecycle, extension, errors, order.

The shared table (``test_table.py``) pins the answers common to all
frameworks; this file pins Quart's own shapes (async and sync views,
``MethodView`` both ways, blueprints, ``guard_blueprint``, websocket routes),
the refresher lifecycle (``before_serving``/``after_serving``), error-handler
overrides and the decorator-order check.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import quart
from quart.testing.connections import WebsocketResponseError
from quart.views import MethodView

from clerkguard import ClerkAuth, ConfigurationError, MissingDependencyError, Session
from clerkguard.quart import AuthHTTPException, ClerkGuard, current_auth, guard_blueprint, require_auth
from clerkguard.testing import LocalIssuer

Mint = Callable[..., str]
BOOM = "user_boom"


def admin_only(session: Session, request: quart.Request | quart.Websocket) -> bool:
    """The authorize every shape uses: admins pass; user_boom makes it crash."""
    if session.user_id == BOOM:
        raise RuntimeError("bug in the app's rule")
    return session.has(role="admin")


def me() -> dict[str, Any]:
    return {"user_id": current_auth.user_id, "g": quart.g._clerkguard_session.user_id}


def shapes_app(auth: ClerkAuth) -> quart.Quart:
    """One route per handler shape, each guarded by ``admin_only``."""
    app = quart.Quart(__name__)
    ClerkGuard(app, auth=auth)
    guarded = require_auth(authorize=admin_only)

    @app.get("/async")
    @guarded
    async def async_view() -> dict[str, Any]:
        return me()

    @app.get("/sync")
    @guarded
    def sync_view() -> dict[str, Any]:
        return me()

    class ListDecorated(MethodView):
        decorators: ClassVar[list[Callable[..., Any]]] = [guarded]

        async def get(self) -> dict[str, Any]:
            return me()

    class PerMethod(MethodView):
        @guarded
        async def get(self) -> dict[str, Any]:
            return me()

        @guarded
        def post(self) -> dict[str, Any]:
            return me()

    app.add_url_rule("/methodview-decorators", view_func=ListDecorated.as_view("list_decorated"))
    app.add_url_rule("/methodview-method", view_func=PerMethod.as_view("per_method"))

    bp = quart.Blueprint("bp", __name__, url_prefix="/bp")

    @bp.get("/route")
    @guarded
    async def bp_route() -> dict[str, Any]:
        return me()

    whole = quart.Blueprint("whole", __name__, url_prefix="/whole")
    guard_blueprint(whole, authorize=admin_only)

    @whole.get("/route")
    async def whole_route() -> dict[str, Any]:
        return me()

    @whole.websocket("/ws")
    async def whole_ws() -> None:
        await quart.websocket.accept()
        await quart.websocket.send_json(me())

    @app.websocket("/ws")
    @guarded
    async def ws() -> None:
        await quart.websocket.accept()
        await quart.websocket.send_json(me())

    app.register_blueprint(bp)
    app.register_blueprint(whole)
    return app


SHAPES = [
    ("GET", "/async"),
    ("GET", "/sync"),
    ("GET", "/methodview-decorators"),
    ("GET", "/methodview-method"),
    ("POST", "/methodview-method"),
    ("GET", "/bp/route"),
    ("GET", "/whole/route"),
    ("WEBSOCKET", "/ws"),
    ("WEBSOCKET", "/whole/ws"),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Answer:
    """A response or a websocket outcome (101 = accepted), normalised."""

    def __init__(self, status: int, headers: dict[str, str], json: Any) -> None:
        self.status, self.headers, self.json = status, headers, json


async def call(app: quart.Quart, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
    client = app.test_client()
    if method != "WEBSOCKET":
        response = await client.open(path, method=method, headers=headers or {})
        return Answer(response.status_code, dict(response.headers), await response.get_json(silent=True))
    try:
        async with client.websocket(path, headers=headers or {}) as ws:
            return Answer(101, {}, await asyncio.wait_for(ws.receive_json(), 10))
    except WebsocketResponseError as rejected:
        # Refused before accept: a real HTTP answer instead of the upgrade.
        response = rejected.response
        return Answer(response.status_code, dict(response.headers), await response.get_json())


def assert_error(answer: Answer, status: int, reason: str) -> None:
    assert answer.status == status, answer.json
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json["reason"] == reason


def ok_status(method: str) -> int:
    return 101 if method == "WEBSOCKET" else 200


@pytest.mark.parametrize(("method", "path"), SHAPES)
class TestEveryShape:
    """The acceptance matrix, for every Quart handler shape."""

    async def test_no_token_is_401_without_error(self, clerk_auth: ClerkAuth, method: str, path: str) -> None:
        answer = await call(shapes_app(clerk_auth), method, path)
        assert_error(answer, 401, "token-missing")
        assert answer.headers["www-authenticate"] == "Bearer"

    async def test_bad_token_is_401_invalid_token(
        self, clerk_auth: ClerkAuth, clerk_issuer: LocalIssuer, method: str, path: str
    ) -> None:
        token = clerk_issuer.mint(org_role="admin", issued_at=clerk_issuer.clock() - 600)
        answer = await call(shapes_app(clerk_auth), method, path, bearer(token))
        assert_error(answer, 401, "token-expired")
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]

    async def test_denied_is_403(
        self, clerk_auth: ClerkAuth, clerk_token: Mint, method: str, path: str
    ) -> None:
        answer = await call(shapes_app(clerk_auth), method, path, bearer(clerk_token(org_role="member")))
        assert_error(answer, 403, "authorization-denied")

    async def test_allowed_reaches_the_session(
        self, clerk_auth: ClerkAuth, clerk_token: Mint, method: str, path: str
    ) -> None:
        token = clerk_token(user_id="user_admin", org_role="admin")
        answer = await call(shapes_app(clerk_auth), method, path, bearer(token))
        assert answer.status == ok_status(method)
        assert answer.json == {"user_id": "user_admin", "g": "user_admin"}

    async def test_authorize_raising_is_403_and_logged(
        self,
        clerk_auth: ClerkAuth,
        clerk_token: Mint,
        method: str,
        path: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        token = clerk_token(user_id=BOOM, org_role="admin")
        with caplog.at_level(logging.WARNING, logger="clerkguard.guard"):
            answer = await call(shapes_app(clerk_auth), method, path, bearer(token))
        assert_error(answer, 403, "authorization-error")
        assert "RuntimeError" in caplog.text
        assert token not in caplog.text

    async def test_jwks_down_on_cold_cache_is_503(
        self, clerk_issuer: LocalIssuer, clerk_token: Mint, dead_jwks_uri: str, method: str, path: str
    ) -> None:
        async with clerk_issuer.auth(jwks_uri=dead_jwks_uri, http_timeout=2.0) as auth:
            answer = await call(shapes_app(auth), method, path, bearer(clerk_token(org_role="admin")))
        assert_error(answer, 503, "jwks-unavailable")
        assert int(answer.headers["retry-after"]) >= 1

    async def test_options_passes_with_a_bad_token(
        self, clerk_auth: ClerkAuth, method: str, path: str
    ) -> None:
        if method == "WEBSOCKET":
            pytest.skip("a websocket handshake is a GET")
        answer = await call(shapes_app(clerk_auth), "OPTIONS", path, bearer("not.a.token"))
        assert answer.status == 200
        assert method in answer.headers["allow"]


class TestLifecycle:
    @staticmethod
    def refreshers() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if "_refresher_coro" in repr(t.get_coro())]

    async def test_serving_starts_and_stops_the_async_refresher(self, clerk_issuer: LocalIssuer) -> None:
        auth = clerk_issuer.auth()
        app = shapes_app(auth)
        async with app.test_app():
            assert len(self.refreshers()) == 1
            # A cold cache is refreshed in the background, before any request.
            for _ in range(200):
                if auth.stats.fetches:
                    break
                await asyncio.sleep(0.02)
            assert auth.stats.fetches == 1
        assert self.refreshers() == []

    async def test_without_serving_hooks_keys_are_fetched_lazily_once(
        self, clerk_auth: ClerkAuth, clerk_issuer: LocalIssuer
    ) -> None:
        app = shapes_app(clerk_auth)  # test_client() alone runs no before_serving
        answers = await asyncio.gather(
            *(
                call(app, "GET", "/async", bearer(clerk_issuer.mint(user_id=f"user_{i}", org_role="admin")))
                for i in range(20)
            )
        )
        assert [a.status for a in answers] == [200] * 20
        assert clerk_auth.stats.fetches == 1
        await clerk_auth.aclose()  # stops whatever the lazy path started on this loop
        assert self.refreshers() == []


class TestExtension:
    async def test_init_app_reads_config_and_stores_in_extensions(
        self, clerk_issuer: LocalIssuer, clerk_token: Mint
    ) -> None:
        app = quart.Quart(__name__)
        app.config.update(clerk_issuer.env())
        guard = ClerkGuard()
        guard.init_app(app)
        assert not hasattr(guard, "app")
        assert app.extensions["clerkguard"].auth.issuer == clerk_issuer.issuer

        @app.get("/me")
        @require_auth
        async def view() -> dict[str, Any]:
            return {"user_id": current_auth.user_id}

        answer = await call(app, "GET", "/me", bearer(clerk_token(user_id="user_cfg")))
        assert answer.json == {"user_id": "user_cfg"}

    async def test_without_extension_the_exception_renders_itself(
        self, clerk_auth: ClerkAuth, clerk_token: Mint
    ) -> None:
        app = quart.Quart(__name__)

        @app.get("/admin")
        @require_auth(auth=clerk_auth, role="admin")
        async def admin() -> str:
            return "ok"

        answer = await call(app, "GET", "/admin", bearer(clerk_token(org_role="member")))
        assert answer.json == {
            "error": "insufficient_scope",
            "reason": "authorization-denied",
            "detail": "the session lacks a required role or permission",
        }
        assert answer.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')

    async def test_app_errorhandler_overrides_the_default(self, clerk_auth: ClerkAuth) -> None:
        app = shapes_app(clerk_auth)

        @app.errorhandler(401)
        async def unauthorized(error: AuthHTTPException) -> tuple[str, int]:
            return f"sign in ({error.error.reason})", 401

        response = await app.test_client().get("/async")
        assert response.status_code == 401
        assert await response.get_data(as_text=True) == "sign in (token-missing)"

    async def test_several_clerk_instances(self, clerk_issuer: LocalIssuer, clerk_auth: ClerkAuth) -> None:
        with LocalIssuer() as other_issuer:
            async with other_issuer.auth() as other_auth:
                app = quart.Quart(__name__)
                ClerkGuard(app, auth=clerk_auth)

                @app.get("/partner")
                @require_auth(auth=other_auth)
                async def partner() -> str:
                    return current_auth.issuer

                ok = await call(app, "GET", "/partner", bearer(other_issuer.mint()))
                assert ok.status == 200
                wrong = await call(app, "GET", "/partner", bearer(clerk_issuer.mint()))
                assert_error(wrong, 401, "jwk-kid-mismatch")  # the other instance's key id


class TestDecoratorOrder:
    async def test_failure_mode_and_detection(self, clerk_auth: ClerkAuth) -> None:
        app = quart.Quart(__name__)

        @require_auth  # WRONG: wraps after the route registered the bare view
        @app.get("/secret")
        async def secret() -> str:
            return "the secret"

        ClerkGuard(app, auth=clerk_auth, check_decorator_order=False)
        # The bypass the check exists for: no token, and the view answers.
        response = await app.test_client().get("/secret")
        assert await response.get_data(as_text=True) == "the secret"
        with pytest.raises(ConfigurationError, match="secret"):
            ClerkGuard(app, auth=clerk_auth)

    async def test_detected_at_first_request_for_late_routes(self, clerk_auth: ClerkAuth) -> None:
        app = quart.Quart(__name__)
        ClerkGuard(app, auth=clerk_auth)

        @require_auth
        @app.get("/late")
        async def late() -> str:
            return "the secret"

        @app.get("/public")
        async def public() -> str:
            return "public"

        client = app.test_client()
        response = await client.get("/late")
        assert response.status_code == 500
        assert "the secret" not in await response.get_data(as_text=True)
        assert await (await client.get("/public")).get_data(as_text=True) == "public"


def test_missing_quart_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "quart", None)
    monkeypatch.delitem(sys.modules, "clerkguard.quart")
    with pytest.raises(MissingDependencyError, match=r'pip install "clerkguard\[quart\]"'):
        importlib.import_module("clerkguard.quart")
