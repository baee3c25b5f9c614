"""Async guards on an instance restricted to one organization: a repeated token
(served from the verified-token cache, through the guards' no-await shortcut
and ``Guard.acheck``) is decided by the restriction every time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.testing import TestClient as LitestarClient
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient as StarletteClient

from clerkguard import ClerkAuth
from clerkguard.litestar import ClerkPlugin
from clerkguard.litestar import require_auth as litestar_require_auth
from clerkguard.starlette import require_auth as starlette_require_auth
from clerkguard.testing import LocalIssuer

from .conftest import ORG_ID

MEMBER = "user_2asyncmemberasyncmember00"
OUTSIDER = "user_2asyncoutsiderasyncoutsi0"
ELSEWHERE = "org_2elsewhereelsewhereelsew"


def litestar_client(auth: ClerkAuth) -> Any:
    @get("/orders")
    @litestar_require_auth
    async def orders(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"user_id": request.auth.user_id}

    return LitestarClient(Litestar([orders], plugins=[ClerkPlugin(auth=auth)]))


def starlette_client(auth: ClerkAuth) -> Any:
    @starlette_require_auth(auth=auth)
    async def orders(request: StarletteRequest) -> JSONResponse:
        return JSONResponse({"user_id": request.scope["auth"].user_id})

    return StarletteClient(Starlette(routes=[Route("/orders", orders)]))


@pytest.mark.parametrize("build", [litestar_client, starlette_client], ids=["litestar", "starlette"])
def test_a_repeated_token_is_decided_by_the_restriction_every_time(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], build: Callable[[ClerkAuth], Any]
) -> None:
    issuer.add_membership(MEMBER, ORG_ID)
    with build(make_auth(organization_id=ORG_ID, http_timeout=1)) as client:
        outsider = {"Authorization": f"Bearer {issuer.mint(user_id=OUTSIDER, org_id=ELSEWHERE)}"}
        member = {"Authorization": f"Bearer {issuer.mint(user_id=MEMBER, org_id=ELSEWHERE)}"}
        claimed = {"Authorization": f"Bearer {issuer.mint(user_id=OUTSIDER, org_id=ORG_ID)}"}
        for _ in range(3):
            refused = client.get("/orders", headers=outsider)
            assert (refused.status_code, refused.json()["reason"]) == (403, "organization-mismatch")
            assert client.get("/orders", headers=member).json() == {"user_id": MEMBER}
            assert client.get("/orders", headers=claimed).json() == {"user_id": OUTSIDER}
