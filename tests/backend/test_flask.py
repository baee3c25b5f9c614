"""Flask: a guarded route on an instance restricted to one organization; an authorize fetching the user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask
import pytest

from clerkguard import ClerkAuth, Session
from clerkguard.flask import ClerkGuard, current_auth, require_auth
from clerkguard.testing import Fault, LocalIssuer

from .conftest import ORG_ID

MEMBER = "user_2flaskmemberflaskmember00"
OUTSIDER = "user_2flaskoutsiderflaskoutsi0"


def _app(auth: ClerkAuth) -> flask.Flask:
    app = flask.Flask(__name__)
    ClerkGuard(app, auth=auth)

    def paying(session: Session, request: flask.Request) -> bool:
        return auth.user(session).public_metadata.get("plan") == "pro"

    @app.get("/orders")
    @require_auth
    def orders() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    @app.get("/reports")
    @require_auth(authorize=paying)
    def reports() -> dict[str, Any]:
        return {"user_id": current_auth.user_id}

    return app


@pytest.fixture
def client(issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]) -> Any:
    issuer.add_membership(MEMBER, ORG_ID)
    issuer.add_user(MEMBER, public_metadata={"plan": "pro"})
    issuer.add_user(OUTSIDER, public_metadata={"plan": "pro"})
    return _app(make_auth(organization_id=ORG_ID, http_timeout=1)).test_client()


def _get(client: Any, path: str, token: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_members_pass_and_others_get_403_organization_mismatch(issuer: LocalIssuer, client: Any) -> None:
    answer = _get(client, "/orders", issuer.mint(user_id=MEMBER))
    assert (answer.status_code, answer.get_json()) == (200, {"user_id": MEMBER})
    by_claims = _get(client, "/orders", issuer.mint(user_id=OUTSIDER, org_id=ORG_ID))
    assert by_claims.status_code == 200  # the token's active organization decides
    refused = _get(client, "/orders", issuer.mint(user_id=OUTSIDER, org_id="org_2elsewhereelsewhereelsew"))
    assert refused.status_code == 403
    assert refused.get_json()["reason"] == "organization-mismatch"
    assert refused.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')


def test_an_outage_is_503_with_retry_after(issuer: LocalIssuer, client: Any) -> None:
    issuer.set_backend_fault(Fault(status=502))
    answer = _get(client, "/orders", issuer.mint(user_id=MEMBER))
    assert answer.status_code == 503
    assert answer.get_json()["reason"] == "backend-api-unavailable"
    assert int(answer.headers["Retry-After"]) >= 1


def test_an_authorize_callback_that_fetches_the_user(issuer: LocalIssuer, client: Any) -> None:
    assert _get(client, "/reports", issuer.mint(user_id=MEMBER, org_id=ORG_ID)).status_code == 200
    issuer.users[MEMBER]["public_metadata"] = {"plan": "free"}  # cached: still the first answer
    assert _get(client, "/reports", issuer.mint(user_id=MEMBER, org_id=ORG_ID)).status_code == 200
    assert [r.path for r in issuer.backend_requests] == [f"/v1/users/{MEMBER}"]
    # A user deleted since sign-in: the callback's 401 reaches the client as a 401.
    gone = _get(client, "/reports", issuer.mint(user_id="user_2gonegonegonegonegonegone0", org_id=ORG_ID))
    assert (gone.status_code, gone.get_json()["reason"]) == (401, "user-not-found")


def test_a_repeated_token_is_refused_every_time(issuer: LocalIssuer, client: Any) -> None:
    # The second request is served from the verified-token cache (the guards'
    # no-await shortcut): the organization restriction must still decide it.
    token = issuer.mint(user_id=OUTSIDER, org_id="org_2elsewhereelsewhereelsew")
    for _ in range(3):
        refused = _get(client, "/orders", token)
        assert (refused.status_code, refused.get_json()["reason"]) == (403, "organization-mismatch")
    member = issuer.mint(user_id=MEMBER)
    for _ in range(3):
        assert _get(client, "/orders", member).status_code == 200
