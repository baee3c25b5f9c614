"""Flask: every handler shape, the extension, errors, decorator order, configuration.

The shared table (``test_table.py``) pins the answers common to all
frameworks; this file pins Flask's own shapes (sync and async views,
``MethodView`` both ways, blueprints, ``guard_blueprint``), the extension
(``init_app``, ``app.extensions``, config/env), error-handler overrides, the
proxy and the decorator-order check.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import flask
import pytest
from flask.views import MethodView

from clerkguard import ClerkAuth, ConfigurationError, MissingDependencyError, Session
from clerkguard.adapters import guard_of, unguarded_views
from clerkguard.flask import (
    AuthForbidden,
    AuthHTTPException,
    ClerkGuard,
    current_auth,
    get_auth,
    guard_blueprint,
    require_auth,
)
from clerkguard.testing import LocalIssuer

Mint = Callable[..., str]
BOOM = "user_boom"


def admin_only(session: Session, request: flask.Request) -> bool:
    """The authorize every shape uses: admins pass; user_boom makes it crash."""
    if session.user_id == BOOM:
        raise RuntimeError("bug in the app's rule")
    return session.has(role="admin")


def me() -> dict[str, Any]:
    return {"user_id": current_auth.user_id, "g": flask.g._clerkguard_session.user_id}


def shapes_app(auth: ClerkAuth) -> flask.Flask:
    """One route per handler shape, each guarded by ``admin_only``."""
    app = flask.Flask(__name__)
    ClerkGuard(app, auth=auth)
    guarded = require_auth(authorize=admin_only)

    @app.get("/sync")
    @guarded
    def sync_view() -> dict[str, Any]:
        return me()

    @app.get("/async")
    @guarded
    async def async_view() -> dict[str, Any]:
        return me()

    class ListDecorated(MethodView):
        decorators: ClassVar[list[Callable[..., Any]]] = [guarded]

        def get(self) -> dict[str, Any]:
            return me()

    class PerMethod(MethodView):
        @guarded
        def get(self) -> dict[str, Any]:
            return me()

        @guarded
        async def post(self) -> dict[str, Any]:
            return me()

    app.add_url_rule("/methodview-decorators", view_func=ListDecorated.as_view("list_decorated"))
    app.add_url_rule("/methodview-method", view_func=PerMethod.as_view("per_method"))

    bp = flask.Blueprint("bp", __name__, url_prefix="/bp")

    @bp.get("/route")
    @guarded
    def bp_route() -> dict[str, Any]:
        return me()

    whole = flask.Blueprint("whole", __name__, url_prefix="/whole")
    guard_blueprint(whole, authorize=admin_only)

    @whole.get("/route")
    def whole_route() -> dict[str, Any]:
        return me()

    app.register_blueprint(bp)
    app.register_blueprint(whole)
    return app


SHAPES = [
    ("GET", "/sync"),
    ("GET", "/async"),
    ("GET", "/methodview-decorators"),
    ("GET", "/methodview-method"),
    ("POST", "/methodview-method"),
    ("GET", "/bp/route"),
    ("GET", "/whole/route"),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, reason: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.get_json()["reason"] == reason


@pytest.mark.parametrize(("method", "path"), SHAPES)
class TestEveryShape:
    """The acceptance matrix, for every Flask handler shape."""

    def test_no_token_is_401_without_error(self, clerk_auth: ClerkAuth, method: str, path: str) -> None:
        response = shapes_app(clerk_auth).test_client().open(path, method=method)
        assert_error(response, 401, "token-missing")
        assert response.headers["WWW-Authenticate"] == "Bearer"

    def test_bad_token_is_401_invalid_token(
        self, clerk_auth: ClerkAuth, clerk_issuer: LocalIssuer, method: str, path: str
    ) -> None:
        token = clerk_issuer.mint(org_role="admin", issued_at=clerk_issuer.clock() - 600)
        response = shapes_app(clerk_auth).test_client().open(path, method=method, headers=bearer(token))
        assert_error(response, 401, "token-expired")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    def test_denied_is_403(self, clerk_auth: ClerkAuth, clerk_token: Mint, method: str, path: str) -> None:
        client = shapes_app(clerk_auth).test_client()
        response = client.open(path, method=method, headers=bearer(clerk_token(org_role="member")))
        assert_error(response, 403, "authorization-denied")
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]

    def test_allowed_reaches_the_session(
        self, clerk_auth: ClerkAuth, clerk_token: Mint, method: str, path: str
    ) -> None:
        token = clerk_token(user_id="user_admin", org_role="admin")
        response = shapes_app(clerk_auth).test_client().open(path, method=method, headers=bearer(token))
        assert response.status_code == 200
        assert response.get_json() == {"user_id": "user_admin", "g": "user_admin"}

    def test_authorize_raising_is_403_and_logged(
        self,
        clerk_auth: ClerkAuth,
        clerk_token: Mint,
        method: str,
        path: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        token = clerk_token(user_id=BOOM, org_role="admin")
        with caplog.at_level(logging.WARNING, logger="clerkguard.guard"):
            response = shapes_app(clerk_auth).test_client().open(path, method=method, headers=bearer(token))
        assert_error(response, 403, "authorization-error")
        assert "RuntimeError" in caplog.text
        assert token not in caplog.text

    def test_jwks_down_on_cold_cache_is_503(
        self, clerk_issuer: LocalIssuer, clerk_token: Mint, dead_jwks_uri: str, method: str, path: str
    ) -> None:
        with clerk_issuer.auth(jwks_uri=dead_jwks_uri, http_timeout=2.0) as auth:
            client = shapes_app(auth).test_client()
            response = client.open(path, method=method, headers=bearer(clerk_token(org_role="admin")))
        assert_error(response, 503, "jwks-unavailable")
        assert int(response.headers["Retry-After"]) >= 1

    def test_options_passes_with_a_bad_token(self, clerk_auth: ClerkAuth, method: str, path: str) -> None:
        response = shapes_app(clerk_auth).test_client().options(path, headers=bearer("not.a.token"))
        assert response.status_code == 200
        assert method in response.headers["Allow"]


def test_wrapper_keeps_name_docstring_and_signature(clerk_auth: ClerkAuth) -> None:
    def report(year: int, *, fmt: str = "pdf") -> str:
        """The yearly report."""
        return f"{year}.{fmt}"

    async def areport(year: int) -> str:
        """Async report."""
        return str(year)

    for handler in (report, areport):
        wrapped = require_auth(role="admin")(handler)
        assert wrapped.__name__ == handler.__name__
        assert wrapped.__doc__ == handler.__doc__
        assert inspect.signature(wrapped) == inspect.signature(handler)
        assert wrapped.__wrapped__ is handler  # type: ignore[attr-defined]
        assert guard_of(wrapped) is not None
    # Flask runs async views on a fresh loop per request: the guard stays sync.
    assert not inspect.iscoroutinefunction(require_auth(areport))


def test_async_views_use_the_sync_fetcher_on_every_fresh_loop(clerk_issuer: LocalIssuer) -> None:
    # Each Flask async view runs on a new event loop; a key fetch tied to one
    # loop would break the next: two fetches from two async requests both work.
    with clerk_issuer.auth(jwks_cooldown=0) as auth:
        client = shapes_app(auth).test_client()
        unknown = clerk_issuer.mint(org_role="admin", header={"kid": "ins_other"})
        for _ in range(2):
            assert_error(client.get("/async", headers=bearer(unknown)), 401, "jwk-kid-mismatch")
        response = client.get("/async", headers=bearer(clerk_issuer.mint(user_id="user_a", org_role="admin")))
        assert response.status_code == 200
        assert auth.stats.fetches == 2  # the cold fetch, then the unknown-kid refetch
        assert auth.stats.failures == 0


class TestExtension:
    def test_init_app_stores_state_in_extensions_not_on_self(self, clerk_auth: ClerkAuth) -> None:
        guard = ClerkGuard(auth=clerk_auth)
        first, second = flask.Flask("first"), flask.Flask("second")
        guard.init_app(first)
        guard.init_app(second)
        assert not hasattr(guard, "app")
        assert guard.auth_for(first) is clerk_auth
        assert first.extensions["clerkguard"].auth is clerk_auth
        assert second.extensions["clerkguard"].auth is clerk_auth

    def test_reads_clerk_settings_from_app_config(
        self, clerk_issuer: LocalIssuer, clerk_token: Mint, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("CLERK_PUBLISHABLE_KEY", raising=False)
        monkeypatch.delenv("CLERK_JWKS_URI", raising=False)
        app = flask.Flask(__name__)
        app.config.update(clerk_issuer.env())
        guard = ClerkGuard(app)
        assert guard.auth_for(app).issuer == clerk_issuer.issuer

        @app.get("/me")
        @require_auth
        def view() -> dict[str, Any]:
            return {"user_id": current_auth.user_id}

        response = app.test_client().get("/me", headers=bearer(clerk_token(user_id="user_cfg")))
        assert response.get_json() == {"user_id": "user_cfg"}

    def test_falls_back_to_the_environment(
        self, clerk_issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name, value in clerk_issuer.env().items():
            monkeypatch.setenv(name, value)
        app = flask.Flask(__name__)
        app.config["CLERK_AUTHORIZED_PARTIES"] = ["https://app.example.com", "https://admin.example.com"]
        auth = ClerkGuard(app).auth_for(app)
        assert auth.issuer == clerk_issuer.issuer
        assert auth.authorized_parties == {"https://app.example.com", "https://admin.example.com"}

    def test_missing_configuration_fails_at_init_app(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("CLERK_PUBLISHABLE_KEY", "CLERK_SECRET_KEY", "CLERK_JWKS_URI", "CLERK_JWT_KEY"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(ConfigurationError, match="CLERK_PUBLISHABLE_KEY"):
            ClerkGuard(flask.Flask(__name__))

    def test_without_extension_the_exception_renders_itself(
        self, clerk_auth: ClerkAuth, clerk_token: Mint
    ) -> None:
        app = flask.Flask(__name__)  # no ClerkGuard(app): no error handler registered

        @app.get("/admin")
        @require_auth(auth=clerk_auth, role="admin")
        def admin() -> str:
            return "ok"

        client = app.test_client()
        assert_error(client.get("/admin"), 401, "token-missing")
        response = client.get("/admin", headers=bearer(clerk_token(org_role="member")))
        assert_error(response, 403, "authorization-denied")
        assert response.get_json() == {
            "error": "insufficient_scope",
            "reason": "authorization-denied",
            "detail": "the session lacks a required role or permission",
        }
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')

    def test_without_extension_auth_comes_from_config(
        self, clerk_issuer: LocalIssuer, clerk_token: Mint
    ) -> None:
        app = flask.Flask(__name__)
        app.config.update(clerk_issuer.env())

        @app.get("/me")
        @require_auth
        def view() -> dict[str, Any]:
            return {"user_id": current_auth.user_id}

        response = app.test_client().get("/me", headers=bearer(clerk_token(user_id="user_lazy")))
        assert response.get_json() == {"user_id": "user_lazy"}
        assert isinstance(app.extensions["clerkguard"].auth, ClerkAuth)


class TestErrorRendering:
    def test_app_errorhandlers_override_the_default(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        app = shapes_app(clerk_auth)

        @app.errorhandler(401)
        def unauthorized(error: AuthHTTPException) -> tuple[str, int, dict[str, str]]:
            # The app sees the clerkguard error and keeps the challenge header.
            return f"please sign in ({error.error.reason})", 401, error.error.headers()

        @app.errorhandler(403)
        def forbidden(error: AuthHTTPException) -> tuple[dict[str, str], int]:
            return {"message": "admins only"}, 403

        client = app.test_client()
        response = client.get("/sync")
        assert response.status_code == 401
        assert response.get_data(as_text=True) == "please sign in (token-missing)"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        response = client.get("/sync", headers=bearer(clerk_token(org_role="member")))
        assert response.get_json() == {"message": "admins only"}

    def test_exception_classes_are_werkzeugs_status_classes(self) -> None:
        from werkzeug.exceptions import Forbidden

        from clerkguard import Forbidden as AuthForbiddenError

        raised = AuthHTTPException.for_error(AuthForbiddenError("authorization-denied"))
        assert isinstance(raised, AuthForbidden)
        assert isinstance(raised, Forbidden)
        assert raised.code == 403


class TestCurrentAuth:
    def test_optional_route_without_token_has_a_falsy_proxy(
        self, clerk_auth: ClerkAuth, clerk_token: Mint
    ) -> None:
        app = flask.Flask(__name__)
        ClerkGuard(app, auth=clerk_auth)

        @app.get("/maybe")
        @require_auth(optional=True)
        def maybe() -> dict[str, Any]:
            return {
                "signed_in": bool(current_auth),
                "user_id": current_auth.user_id if current_auth else None,
            }

        client = app.test_client()
        assert client.get("/maybe").get_json() == {"signed_in": False, "user_id": None}
        response = client.get("/maybe", headers=bearer(clerk_token(user_id="user_x")))
        assert response.get_json() == {"signed_in": True, "user_id": "user_x"}

    def test_get_auth_returns_the_session(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        app = flask.Flask(__name__)
        ClerkGuard(app, auth=clerk_auth)
        seen: list[Session | None] = []

        @app.get("/me")
        @require_auth
        def view() -> str:
            seen.append(get_auth())
            return "ok"

        app.test_client().get("/me", headers=bearer(clerk_token(user_id="user_y")))
        assert isinstance(seen[0], Session)
        assert seen[0].user_id == "user_y"


class TestDecoratorOrder:
    """``@require_auth`` above ``@app.route`` registers the bare function."""

    @staticmethod
    def misordered_app() -> flask.Flask:
        app = flask.Flask(__name__)

        @require_auth  # WRONG: wraps after the route registered the bare view
        @app.get("/secret")
        def secret() -> str:
            return "the secret"

        @app.get("/fine")
        @require_auth
        def fine() -> str:
            return "fine"

        return app

    def test_the_failure_mode_is_a_silent_bypass(self, clerk_auth: ClerkAuth) -> None:
        app = self.misordered_app()
        ClerkGuard(app, auth=clerk_auth, check_decorator_order=False)
        # What the check prevents: no token, and the "guarded" view answers.
        assert app.test_client().get("/secret").get_data(as_text=True) == "the secret"
        assert unguarded_views(app.view_functions) == ["secret"]

    def test_detected_at_init_app(self, clerk_auth: ClerkAuth) -> None:
        with pytest.raises(ConfigurationError, match="secret"):
            ClerkGuard(self.misordered_app(), auth=clerk_auth)

    def test_detected_at_first_request_for_routes_added_after_init_app(
        self, clerk_auth: ClerkAuth, caplog: pytest.LogCaptureFixture
    ) -> None:
        app = flask.Flask(__name__)
        ClerkGuard(app, auth=clerk_auth)
        bp = flask.Blueprint("late", __name__)

        @require_auth  # WRONG order, registered with the blueprint after init_app
        @bp.get("/late")
        def late() -> str:
            return "the secret"

        @bp.get("/public")
        def public() -> str:
            return "public"

        app.register_blueprint(bp)
        client = app.test_client()
        app.testing = False  # a 500 like production (testing mode would re-raise)
        with caplog.at_level(logging.ERROR):
            response = client.get("/late")
        assert response.status_code == 500
        assert "the secret" not in response.get_data(as_text=True)
        assert "late.late" in caplog.text
        assert client.get("/public").get_data(as_text=True) == "public"  # other routes unaffected


def test_several_clerk_instances(clerk_issuer: LocalIssuer, clerk_auth: ClerkAuth) -> None:
    with LocalIssuer() as other_issuer, other_issuer.auth() as other_auth:
        app = flask.Flask(__name__)
        ClerkGuard(app, auth=clerk_auth)

        @app.get("/main")
        @require_auth
        def main() -> str:
            return current_auth.issuer

        @app.get("/partner")
        @require_auth(auth=other_auth)
        def partner() -> str:
            return current_auth.issuer

        client = app.test_client()
        other = other_issuer.mint()
        assert client.get("/partner", headers=bearer(other)).get_data(as_text=True) == other_issuer.issuer
        assert client.get("/main", headers=bearer(other)).status_code == 401
        assert client.get("/partner", headers=bearer(clerk_issuer.mint())).status_code == 401


def test_default_authorize_on_clerk_auth_and_the_decorators_wins(clerk_issuer: LocalIssuer) -> None:
    with clerk_issuer.auth(authorize=lambda s, r: s.user_id == "user_default_ok") as auth:
        app = flask.Flask(__name__)
        ClerkGuard(app, auth=auth)

        @app.get("/default")
        @require_auth
        def default() -> str:
            return "ok"

        @app.get("/own")
        @require_auth(authorize=lambda s, r: s.user_id == "user_own_ok")
        def own() -> str:
            return "ok"

        client = app.test_client()
        assert (
            client.get("/default", headers=bearer(clerk_issuer.mint(user_id="user_default_ok"))).status_code
            == 200
        )
        assert (
            client.get("/default", headers=bearer(clerk_issuer.mint(user_id="user_own_ok"))).status_code
            == 403
        )
        assert client.get("/own", headers=bearer(clerk_issuer.mint(user_id="user_own_ok"))).status_code == 200
        assert (
            client.get("/own", headers=bearer(clerk_issuer.mint(user_id="user_default_ok"))).status_code
            == 403
        )


def test_options_can_be_guarded_when_asked(clerk_auth: ClerkAuth) -> None:
    app = flask.Flask(__name__)
    ClerkGuard(app, auth=clerk_auth)

    @app.route("/strict", methods=["GET", "OPTIONS"])
    @require_auth(allow_options=False)
    def strict() -> str:
        return "ok"

    assert_error(app.test_client().options("/strict"), 401, "token-missing")


def test_bad_options_fail_when_decorating() -> None:
    with pytest.raises(TypeError, match="rolle"):
        require_auth(rolle="admin")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="token_sources"):
        require_auth(token_sources=("query",))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="authorize"):
        require_auth(authorize="admin")  # type: ignore[arg-type]


def test_missing_flask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)  # import flask -> ImportError
    monkeypatch.delitem(sys.modules, "clerkguard.flask")
    with pytest.raises(MissingDependencyError, match=r'pip install "clerkguard\[flask\]"') as info:
        importlib.import_module("clerkguard.flask")
    assert isinstance(info.value, ImportError)


def test_guard_blueprint_also_guards_a_whole_app(clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
    app = flask.Flask(__name__)
    ClerkGuard(app, auth=clerk_auth)
    installed = guard_blueprint(app, optional=True)
    assert installed.options.optional

    @app.get("/anything")
    def anything() -> dict[str, Any]:
        session = get_auth()
        return {"user_id": session.user_id if session else None}

    client = app.test_client()
    assert client.get("/anything").get_json() == {"user_id": None}
    assert client.get("/anything", headers=bearer(clerk_token(user_id="user_app"))).get_json() == {
        "user_id": "user_app"
    }
    assert_error(client.get("/anything", headers=bearer("a.b.c")), 401, "token-malformed")
