"""require_webhook beyond the shared table: options, dedupe hooks, handler kinds, framework ways."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest

from clerkguard import ConfigurationError, WebhookError
from clerkguard.testing import WebhookSigner
from clerkguard.webhooks import InMemoryDedupe, WebhookEvent

USER = {"id": "user_1", "object": "user"}


# -- Flask: sync wrapper ------------------------------------------------------------------------
flask = pytest.importorskip("flask")
from clerkguard.flask import current_webhook, get_webhook  # noqa: E402
from clerkguard.flask import require_webhook as flask_webhook  # noqa: E402


def flask_app(**options: Any) -> tuple[Any, list[WebhookEvent]]:
    app = flask.Flask("webhook_test")
    seen: list[WebhookEvent] = []

    @app.post("/hook")
    @flask_webhook(**options)
    def hook() -> Any:
        seen.append(get_webhook())  # type: ignore[arg-type]
        if current_webhook.type == "user.deleted":
            raise RuntimeError("handler bug")
        return {"id": current_webhook.id}

    return app, seen


def send(app: Any, body: bytes, headers: dict[str, str]) -> Any:
    return app.test_client().post("/hook", data=body, headers=headers)


def test_options_are_checked_when_applied() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        flask_webhook(event=["user.created"])
    with pytest.raises(ConfigurationError):
        flask_webhook(events="user.created")
    with pytest.raises(ConfigurationError):
        flask_webhook(events=[])
    with pytest.raises(ConfigurationError):
        flask_webhook(secret="whsec_not base64!")
    with pytest.raises(ConfigurationError):
        flask_webhook(dedupe="yes")
    with pytest.raises(ConfigurationError):
        flask_webhook(tolerance=-5)


def test_bare_decorator_uses_the_environment_secret(clerk_webhook_signer: WebhookSigner) -> None:
    app = flask.Flask("bare")

    @app.post("/hook")
    @flask_webhook
    def hook() -> Any:
        return {"type": current_webhook.type}

    body, headers = clerk_webhook_signer.delivery("session.created", {"id": "sess_1"})
    assert app.test_client().post("/hook", data=body, headers=headers).get_json() == {
        "type": "session.created"
    }


def test_secret_read_per_request_so_rotation_in_env_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    app, _ = flask_app()
    first, second = WebhookSigner(), WebhookSigner()
    monkeypatch.setenv("CLERK_WEBHOOK_SIGNING_SECRET", first.secret)
    assert send(app, *first.delivery("user.created", USER)).status_code == 200
    monkeypatch.setenv("CLERK_WEBHOOK_SIGNING_SECRET", second.secret)
    assert send(app, *first.delivery("user.created", USER)).status_code == 400
    assert send(app, *second.delivery("user.created", USER)).status_code == 200


def test_no_secret_anywhere_is_a_server_error_not_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLERK_WEBHOOK_SIGNING_SECRET", raising=False)
    app, seen = flask_app()
    app.testing = True  # propagate: the misconfiguration is the app's, not the sender's
    with pytest.raises(ConfigurationError, match="CLERK_WEBHOOK_SIGNING_SECRET"):
        send(app, *WebhookSigner().delivery("user.created", USER))
    assert seen == []


def test_event_prefix_filter() -> None:
    signer = WebhookSigner()
    app, seen = flask_app(secret=signer.secret, events=["user.*"])
    assert send(app, *signer.delivery("user.updated", USER)).status_code == 200
    answer = send(app, *signer.delivery("organization.created", {"id": "org_1"}))
    assert (answer.status_code, answer.get_json()["reason"]) == (200, "event-type-not-handled")
    assert [e.type for e in seen] == ["user.updated"]


def test_async_dedupe_hook_in_a_sync_framework() -> None:
    signer = WebhookSigner()
    ids: set[str] = set()

    async def seen_before(event_id: str) -> bool:
        await asyncio.sleep(0)
        if event_id in ids:
            return True
        ids.add(event_id)
        return False

    app, seen = flask_app(secret=signer.secret, dedupe=seen_before)
    body, headers = signer.delivery("user.created", USER)
    assert send(app, body, headers).status_code == 200
    assert send(app, body, headers).get_json() == {"status": "ignored", "reason": "duplicate-delivery"}
    assert len(seen) == 1


def test_a_failing_dedupe_store_is_a_503_and_the_handler_does_not_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    signer = WebhookSigner()

    def broken(event_id: str) -> bool:
        raise ConnectionError("database down")

    app, seen = flask_app(secret=signer.secret, dedupe=broken)
    answer = send(app, *signer.delivery("user.created", USER))
    assert answer.status_code == 503
    assert {k: answer.get_json()[k] for k in ("error", "reason")} == {
        "error": "temporarily_unavailable",
        "reason": "dedupe-failed",
    }
    assert int(answer.headers["Retry-After"]) >= 1
    assert seen == []
    assert "ConnectionError" in caplog.text


def test_a_failing_handler_releases_the_id_so_the_retry_runs() -> None:
    signer = WebhookSigner()
    dedupe = InMemoryDedupe()
    app, seen = flask_app(secret=signer.secret, dedupe=dedupe)
    app.testing = False  # a handler exception becomes Flask's 500, as in production
    body, headers = signer.delivery("user.deleted", USER)
    assert send(app, body, headers).status_code == 500
    assert headers["svix-id"] not in dedupe
    assert send(app, body, headers).status_code == 500  # retried: the handler ran again
    assert len(seen) == 2


def test_flask_errorhandler_400_can_render_refusals() -> None:
    signer = WebhookSigner()
    app, _ = flask_app(secret=signer.secret)

    @app.errorhandler(400)
    def bad_request(error: Any) -> Any:
        return {"custom": error.error.reason}, 400

    body, headers = signer.delivery("user.created", USER)
    answer = send(app, body + b" ", headers)
    assert answer.get_json() == {"custom": "signature-invalid"}


def test_flask_streamed_body_over_the_limit_is_stopped() -> None:
    signer = WebhookSigner()
    app, seen = flask_app(secret=signer.secret, max_body=1000)
    body = signer.payload("user.created", {"id": "user_1", "pad": "x" * 5000})
    headers = signer.headers(body)

    # No Content-Length, a terminated stream (what a server gives for a chunked body).
    answer = app.test_client().post(
        "/hook",
        input_stream=io.BytesIO(body),
        headers=headers,
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert (answer.status_code, answer.get_json()["reason"]) == (400, "body-too-large")
    assert seen == []


def test_raw_body_is_verified_even_when_not_utf8_json_content_type() -> None:
    signer = WebhookSigner()
    app, seen = flask_app(secret=signer.secret)
    body, headers = signer.delivery("user.created", USER)
    headers["content-type"] = "application/x-www-form-urlencoded"  # a form parser must not eat it
    assert send(app, body, headers).status_code == 200
    assert seen[0].raw == body


# -- Quart: async wrapper around a sync view -----------------------------------------------------
quart = pytest.importorskip("quart")
from clerkguard.quart import current_webhook as quart_current_webhook  # noqa: E402
from clerkguard.quart import require_webhook as quart_webhook  # noqa: E402


async def test_quart_sync_view_and_async_dedupe() -> None:
    signer = WebhookSigner()
    app = quart.Quart("quart_webhook")
    dedupe = InMemoryDedupe()

    @app.post("/hook")
    @quart_webhook(secret=signer.secret, dedupe=dedupe)
    def hook() -> Any:  # a sync view: Quart runs it in a thread
        return {"type": quart_current_webhook.type}

    client = app.test_client()
    body, headers = signer.delivery("user.created", USER)
    first = await client.post("/hook", data=body, headers=headers)
    assert (first.status_code, await first.get_json()) == (200, {"type": "user.created"})
    second = await client.post("/hook", data=body, headers=headers)
    assert (await second.get_json())["reason"] == "duplicate-delivery"
    tampered = await client.post("/hook", data=body.replace(b"user_1", b"user_2"), headers=headers)
    assert (tampered.status_code, (await tampered.get_json())["reason"]) == (400, "signature-invalid")


# -- Litestar: injection, sync handlers, request.state ------------------------------------------------
litestar = pytest.importorskip("litestar")
from litestar import Litestar, Request, post  # noqa: E402
from litestar.testing import TestClient  # noqa: E402

from clerkguard.litestar import require_webhook as litestar_webhook  # noqa: E402


def test_litestar_injects_the_event_and_runs_sync_handlers_in_a_thread() -> None:
    signer = WebhookSigner()
    calls: list[str] = []

    @post("/async", status_code=200)
    @litestar_webhook(secret=signer.secret)
    async def async_hook(webhook: WebhookEvent, request: Request[Any, Any, Any]) -> dict[str, Any]:
        assert request.state["clerk_webhook"] is webhook
        return {"type": webhook.type}

    @post("/sync", status_code=200)
    @litestar_webhook(secret=signer.secret)
    def sync_hook(webhook: WebhookEvent) -> dict[str, Any]:
        calls.append(webhook.id)
        return {"user": webhook.data["id"]}

    @post("/state", status_code=204)
    @litestar_webhook(secret=signer.secret, events=["user.created"])
    async def state_hook(request: Request[Any, Any, Any]) -> None:
        calls.append(request.state["clerk_webhook"].type)

    with TestClient(Litestar([async_hook, sync_hook, state_hook])) as client:
        body, headers = signer.delivery("user.created", USER)
        assert client.post("/async", content=body, headers=headers).json() == {"type": "user.created"}
        assert client.post("/sync", content=body, headers=headers).json() == {"user": "user_1"}
        assert client.post("/state", content=body, headers=headers).status_code == 204
        ignored = client.post("/state", content=signer.delivery("user.updated", USER)[0], headers=headers)
        assert ignored.status_code == 400  # the body changed under the same signature
        other_body, other_headers = signer.delivery("user.updated", USER)
        skipped = client.post("/state", content=other_body, headers=other_headers)
        assert (skipped.status_code, skipped.json()["reason"]) == (200, "event-type-not-handled")
        schema = client.get("/schema/openapi.json").json()
    assert calls == [headers["svix-id"], "user.created"]
    operation = schema["paths"]["/async"]["post"]
    assert "webhook" not in json.dumps(operation.get("parameters", []))  # hidden from OpenAPI


def test_litestar_refuses_the_decorator_above_the_route() -> None:
    with pytest.raises(TypeError, match="below the Litestar route decorator"):

        @litestar_webhook(secret=WebhookSigner().secret)
        @post("/x")
        async def hook() -> None: ...


# -- Sanic: request.ctx.webhook --------------------------------------------------------------------
sanic = pytest.importorskip("sanic")
from sanic.response import json as sanic_json  # noqa: E402
from sanic_testing.testing import SanicASGITestClient  # noqa: E402

from clerkguard.sanic import require_webhook as sanic_webhook  # noqa: E402


async def test_sanic_exposes_request_ctx_webhook() -> None:
    signer = WebhookSigner()
    sanic.Sanic.test_mode = True
    app = sanic.Sanic("webhook_ctx_test")

    @app.post("/hook")
    @sanic_webhook(secret=signer.secret)
    async def hook(request: sanic.Request) -> Any:
        event: WebhookEvent = request.ctx.webhook
        return sanic_json({"type": event.type, "instance": event.instance_id})

    client = SanicASGITestClient(app)
    body, headers = signer.delivery("user.created", USER)
    _, response = await client.post("/hook", content=body, headers=headers)
    assert response.json == {"type": "user.created", "instance": "ins_test"}
    _, refused = await client.post("/hook", content=body, headers={})
    assert (refused.status_code, refused.json["reason"]) == (400, "signature-missing")


def test_webhook_error_is_a_clerkguard_auth_error_without_a_challenge() -> None:
    error = WebhookError("signature-invalid", "no signature matches")
    assert error.status == 400
    body = error.to_dict()
    assert (body["error"], body["reason"]) == ("invalid_webhook", "signature-invalid")
    assert set(body) <= {"error", "reason", "detail"}
    assert error.headers() == {}


def test_refusals_are_logged_by_reason_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="clerkguard")
    signer = WebhookSigner()
    app, seen = flask_app(secret=signer.secret, events=["user.created"])
    body, headers = signer.delivery("user.created", {"id": "user_secretive", "email": "ada@example.com"})
    assert send(app, body.replace(b"ada@", b"eve@"), headers).status_code == 400
    assert send(app, *signer.delivery("session.created", {"id": "sess_1"})).status_code == 200
    assert "webhook refused: 400 signature-invalid" in caplog.text
    assert "event-type-not-handled" in caplog.text
    for secret_or_data in (
        signer.secret.removeprefix("whsec_"),
        "ada@",
        "eve@",
        "user_secretive",
        headers["svix-signature"],
    ):
        assert secret_or_data not in caplog.text
    assert seen == []


def test_decorator_above_the_route_is_refused_by_the_extension(clerk_auth: Any) -> None:
    from clerkguard.flask import ClerkGuard

    signer = WebhookSigner()
    app = flask.Flask("misordered_webhook")

    @flask_webhook(secret=signer.secret)  # ABOVE the route: Flask registered the bare function
    @app.post("/hook")
    def hook() -> Any:
        return {"forged": "accepted"}

    with pytest.raises(ConfigurationError) as info:
        ClerkGuard(app, auth=clerk_auth)
    # The refusal names the decorator that is misplaced, not require_auth.
    assert str(info.value) == (
        "require_webhook is above the route decorator for hook: the route registered the "
        "unguarded function. Put @require_webhook below @app.route."
    )


def test_a_misplaced_guard_and_webhook_are_each_named(clerk_auth: Any) -> None:
    from clerkguard.flask import ClerkGuard, require_auth

    app = flask.Flask("misordered_both")

    @flask_webhook(secret=WebhookSigner().secret)
    @app.post("/hook")
    def hook() -> Any:
        return {}

    @require_auth
    @app.get("/secret")
    def secret() -> Any:
        return {}

    with pytest.raises(ConfigurationError) as info:
        ClerkGuard(app, auth=clerk_auth)
    assert str(info.value).startswith(
        "require_auth is above the route decorator for secret; "
        "require_webhook is above the route decorator for hook: "
    )
    assert str(info.value).endswith("Put @require_auth and @require_webhook below @app.route.")


def test_flask_names_a_webhook_added_after_init_at_its_first_request(
    clerk_auth: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from clerkguard.flask import ClerkGuard

    app = flask.Flask("misordered_late_webhook")
    ClerkGuard(app, auth=clerk_auth)

    @flask_webhook(secret=WebhookSigner().secret)
    @app.post("/hook")
    def hook() -> Any:
        return {"forged": "accepted"}

    caplog.set_level(logging.ERROR, logger="clerkguard")
    response = app.test_client().post("/hook", data=b"{}")
    assert response.status_code == 500
    assert "require_webhook is above the route decorator for hook; those views are NOT guarded" in caplog.text
    assert "require_auth" not in caplog.text


async def test_quart_names_the_misplaced_webhook_decorator(clerk_auth: Any) -> None:
    from clerkguard.quart import ClerkGuard as QuartGuard

    app = quart.Quart("misordered_quart_webhook")

    @quart_webhook(secret=WebhookSigner().secret)
    @app.post("/hook")
    async def hook() -> Any:
        return {"forged": "accepted"}

    with pytest.raises(
        ConfigurationError,
        match=r"^require_webhook is above the route decorator for hook: .*"
        r"Put @require_webhook below @app\.route\.$",
    ):
        QuartGuard(app, auth=clerk_auth)


def test_fastapi_clerkguard_refuses_the_webhook_decorator_above_the_route(clerk_auth: Any) -> None:
    fastapi = pytest.importorskip("fastapi")
    from clerkguard.fastapi import ClerkGuard as FastAPIGuard
    from clerkguard.fastapi import require_webhook as fastapi_webhook

    app = fastapi.FastAPI()

    @fastapi_webhook(secret=WebhookSigner().secret)  # ABOVE the route: FastAPI registered the bare function
    @app.post("/hook")
    async def hook() -> dict[str, str]:
        return {"forged": "accepted"}

    with pytest.raises(ConfigurationError) as info:
        FastAPIGuard(app, clerk_auth)
    assert str(info.value).startswith("require_webhook is above the route decorator for /hook: ")
    assert str(info.value).endswith("Put @require_webhook below @app.get(...).")
    assert "require_auth" not in str(info.value)


def test_starlette_names_the_misplaced_webhook_decorator(clerk_auth: Any) -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from clerkguard.starlette import ClerkGuard as StarletteGuard
    from clerkguard.starlette import require_webhook as starlette_webhook

    async def hook(request: Any) -> JSONResponse:
        return JSONResponse({"forged": "accepted"})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    starlette_webhook(secret=WebhookSigner().secret)(hook)  # too late: the route holds the bare function
    with pytest.raises(ConfigurationError) as info:
        StarletteGuard(app, clerk_auth)
    assert str(info.value).startswith("require_webhook is above the route decorator for /hook: ")
    assert "@require_auth" not in str(info.value)


def test_sanic_names_the_misplaced_webhook_decorator(clerk_auth: Any) -> None:
    from clerkguard.sanic import ClerkGuard as SanicGuard

    sanic.Sanic.test_mode = True
    app = sanic.Sanic("webhook_misordered_test")
    SanicGuard(app, auth=clerk_auth)

    @sanic_webhook(secret=WebhookSigner().secret)  # wrong: Sanic already registered the bare function
    @app.post("/hook")
    async def hook(request: sanic.Request) -> Any:
        return sanic_json({"forged": "accepted"})

    client = SanicASGITestClient(app)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ConfigurationError) as info:
            loop.run_until_complete(client.request("POST", "/hook", gather_request=False))
    finally:
        loop.close()
    message = str(info.value)
    assert message.startswith("require_webhook is above the route decorator of ")
    assert "hook" in message
    assert message.endswith("Put @require_webhook below @app.get(...).")


def test_fastapi_webhook_reuses_the_endpoints_own_request_parameter(clerk_auth: Any) -> None:
    fastapi = pytest.importorskip("fastapi")
    import inspect

    from fastapi.testclient import TestClient

    from clerkguard.fastapi import ClerkGuard as FastAPIGuard
    from clerkguard.fastapi import require_webhook as fastapi_webhook

    signer = WebhookSigner()
    app = fastapi.FastAPI()
    FastAPIGuard(app, clerk_auth)

    async def endpoint(request: Any, webhook: Any) -> dict[str, Any]:
        return {"type": webhook.type, "same": request.state.clerk_webhook is webhook}

    # Real classes, not this module's postponed strings (fastapi is imported locally here).
    endpoint.__annotations__.update(request=fastapi.Request, webhook=WebhookEvent)
    hook = fastapi_webhook(secret=signer.secret)(endpoint)
    app.post("/hook")(hook)

    assert list(inspect.signature(hook).parameters) == ["request"]  # reused; `webhook` hidden
    body = signer.payload("user.created", {"id": "user_1"})
    with TestClient(app) as client:
        answer = client.post("/hook", content=body, headers=signer.headers(body))
        assert answer.status_code == 200
        assert answer.json() == {"type": "user.created", "same": True}
        forged = client.post("/hook", content=body, headers=WebhookSigner().headers(body))
        assert forged.status_code == 400
