"""``organization_id`` / ``organization_slug``: claims first, then the Backend API membership list."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clerkguard import AuthError, BackendUnavailable, ClerkAuth, ConfigurationError, Forbidden, _users
from clerkguard.testing import Fault, LocalIssuer

from .conftest import ORG_ID, ORG_SLUG

SHAPES = json.loads((Path(__file__).parents[1] / "fixtures" / "backend_api_shapes.json").read_text())
USER = "user_2orgmemberorgmemberorgme0"
OTHER_ORG = "org_2otherotherotherotherother"


def _refused(auth: ClerkAuth, token: str, accepts: Any = "session_token") -> AuthError:
    with pytest.raises(AuthError) as info:
        auth.verify(token, accepts_token=accepts)
    return info.value


async def _arefused(auth: ClerkAuth, token: str, accepts: Any = "session_token") -> AuthError:
    with pytest.raises(AuthError) as info:
        await auth.averify(token, accepts_token=accepts)
    return info.value


def _restricted(make_auth: Callable[..., ClerkAuth], by: str, **options: Any) -> ClerkAuth:
    if by == "id":
        return make_auth(organization_id=ORG_ID, **options)
    return make_auth(organization_slug=ORG_SLUG, **options)


# -- configuration -----------------------------------------------------------------------
def test_one_of_id_and_slug_and_both_need_the_secret_key(issuer: LocalIssuer) -> None:
    with pytest.raises(ConfigurationError, match=r"CLERK_ORGANIZATION_ID.*CLERK_ORGANIZATION_SLUG.*not both"):
        issuer.machine_auth(organization_id=ORG_ID, organization_slug=ORG_SLUG)
    with pytest.raises(ConfigurationError, match="not both"):
        issuer.machine_auth(env={"CLERK_ORGANIZATION_ID": ORG_ID}, organization_slug=ORG_SLUG)
    with pytest.raises(
        ConfigurationError, match=r"`organization_id` \(env CLERK_ORGANIZATION_ID\).*secret_key"
    ):
        issuer.auth(organization_id=ORG_ID)  # a publishable key alone cannot read memberships
    with pytest.raises(ConfigurationError, match=r"org_\.\.\."):
        issuer.machine_auth(organization_id=ORG_SLUG)  # a slug given as the id
    with pytest.raises(ConfigurationError, match="organization_slug"):
        issuer.machine_auth(organization_slug="acme corp")
    with issuer.machine_auth(env={"CLERK_ORGANIZATION_SLUG": ORG_SLUG}) as auth:
        assert auth.organization is not None
        assert auth.organization.slug == ORG_SLUG
    with issuer.machine_auth(env={"CLERK_ORGANIZATION_ID": "  "}) as auth:  # blank = unset
        assert auth.organization is None


# -- the claims decide, without any request --------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("by", ["id", "slug"])
def test_the_active_organization_of_v1_and_v2_claims_decides_without_a_request(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], version: int, by: str
) -> None:
    auth = _restricted(make_auth, by)
    token = issuer.mint(user_id=USER, org_id=ORG_ID, org_slug=ORG_SLUG, org_role="admin", version=version)
    claims = issuer.claims(user_id=USER, org_id=ORG_ID, org_slug=ORG_SLUG, org_role="admin", version=version)
    assert ("o" in claims) == (version == 2)  # v2: o.id / o.slg; v1: org_id / org_slug
    session = auth.verify(token)
    assert session.org_id == ORG_ID
    assert asyncio.run(auth.averify(token)) is session
    assert asyncio.run(
        auth.averify(issuer.mint(user_id=USER, org_id=ORG_ID, org_slug=ORG_SLUG, version=version))
    )
    assert not issuer.backend_requests


# -- the membership list decides otherwise ---------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("by", ["id", "slug"])
def test_another_or_no_active_organization_falls_back_to_the_membership_list(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], version: int, by: str
) -> None:
    issuer.add_membership(USER, OTHER_ORG, slug="other")
    issuer.add_membership(USER, ORG_ID, slug=ORG_SLUG)
    auth = _restricted(make_auth, by)
    elsewhere = issuer.mint(user_id=USER, org_id=OTHER_ORG, org_slug="other", version=version)
    assert auth.verify(elsewhere).org_id == OTHER_ORG  # a member: allowed, its claims untouched
    (sent,) = issuer.backend_requests
    assert (sent.method, sent.path, sent.body) == ("GET", f"/v1/users/{USER}/organization_memberships", b"")
    assert sent.path == SHAPES["organization_memberships"]["path"].replace("{user_id}", USER)
    assert sent.query == "limit=100&offset=0"
    assert sent.authorization == f"Bearer {issuer.secret_key}"
    # Cached per user: new tokens of the same user, sync or async, with no active organization.
    assert auth.verify(issuer.mint(user_id=USER, version=version)).org_id is None
    assert asyncio.run(auth.averify(issuer.mint(user_id=USER, version=version))).user_id == USER
    assert len(issuer.backend_requests) == 1


def test_the_recorded_answer_decides_and_the_fake_serves_every_required_member(issuer: LocalIssuer) -> None:
    shape = SHAPES["organization_memberships"]
    response = _users.HTTPResponse(200, json.dumps(shape["answer"]).encode())
    recorded_org = shape["answer"]["data"][0]["organization"]
    assert _users.UserDirectory._page(response, recorded_org["id"], None) == (True, 1)
    assert _users.UserDirectory._page(response, None, recorded_org["slug"]) == (True, 1)
    assert _users.UserDirectory._page(response, OTHER_ORG, None) == (False, 1)
    membership = issuer.add_membership(USER, ORG_ID)
    assert set(shape["membership_required"]) <= set(membership)
    assert set(shape["organization_required"]) <= set(membership["organization"])
    assert set(shape["membership_required"]) <= set(shape["answer"]["data"][0])
    # GET /v1/organizations/{id}: the recorded organization gives its slug; the fake serves the same members.
    organization = SHAPES["organization"]
    response = _users.HTTPResponse(200, json.dumps(organization["answer"]).encode())
    assert _users.UserDirectory._slug(response) == organization["answer"]["slug"] == "acme"
    assert set(organization["required"]) <= set(issuer.organizations[ORG_ID])


@pytest.mark.parametrize("by", ["id", "slug"])
def test_not_a_member_is_403_organization_mismatch_sync_and_async(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], by: str
) -> None:
    issuer.add_membership(USER, OTHER_ORG, slug="other")
    auth = _restricted(make_auth, by)
    token = issuer.mint(user_id=USER, org_id=OTHER_ORG, org_slug="other")
    error = _refused(auth, token)
    assert isinstance(error, Forbidden)
    assert (error.status, error.reason) == (403, "organization-mismatch")
    assert "insufficient_scope" in error.headers()["WWW-Authenticate"]
    # The verified-token cache does not skip the rule; the verdict is cached per user.
    assert _refused(auth, token).reason == "organization-mismatch"
    assert asyncio.run(_arefused(auth, issuer.mint(user_id=USER))).reason == "organization-mismatch"
    assert len(issuer.backend_requests) == 1


def test_memberships_are_read_page_by_page_until_found(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    for i in range(150):
        issuer.add_membership(USER, f"org_2filler{i:020d}", slug=f"filler-{i}")
    auth = make_auth(organization_id=ORG_ID)
    assert _refused(auth, issuer.mint(user_id=USER)).reason == "organization-mismatch"
    assert [r.query for r in issuer.backend_requests] == ["limit=100&offset=0", "limit=100&offset=100"]
    issuer.backend_requests.clear()
    issuer.add_membership("user_2late000000000000000000000", ORG_ID)
    for i in range(120):
        issuer.add_membership("user_2late000000000000000000000", f"org_2more{i:020d}")
    issuer.memberships["user_2late000000000000000000000"].reverse()  # the match on the second page
    assert asyncio.run(auth.averify(issuer.mint(user_id="user_2late000000000000000000000")))
    assert [r.query for r in issuer.backend_requests] == ["limit=100&offset=0", "limit=100&offset=100"]


def test_200_threads_and_200_tasks_on_one_new_user_make_one_call(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    issuer.add_membership(USER, ORG_ID, slug=ORG_SLUG)
    auth = make_auth(organization_slug=ORG_SLUG, http_timeout=5)
    tokens = [issuer.mint(user_id=USER) for _ in range(4)]  # several tokens, one user
    issuer.set_backend_fault(delay=0.5)  # everyone arrives while the one call is in flight
    passed: list[str] = []
    start = threading.Barrier(201)

    def in_thread(i: int) -> None:
        start.wait()
        passed.append(auth.verify(tokens[i % 4]).user_id)

    async def tasks() -> list[str]:
        start.wait()
        done = await asyncio.gather(*(auth.averify(tokens[i % 4]) for i in range(200)))
        return [s.user_id for s in done]

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    passed += asyncio.run(tasks())
    for thread in threads:
        thread.join()
    assert passed == [USER] * 400
    assert len(issuer.backend_requests) == 1


class _Later:
    """``time`` for `clerkguard._users`, running ``offset`` seconds ahead."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def test_a_verdict_is_reused_for_user_cache_ttl_then_asked_again(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], monkeypatch: pytest.MonkeyPatch
) -> None:
    later = _Later()
    monkeypatch.setattr(_users, "time", later)
    issuer.add_membership(USER, ORG_ID)
    auth = make_auth(organization_id=ORG_ID, user_cache_ttl=30)
    token = issuer.mint(user_id=USER)
    assert auth.verify(token)
    issuer.memberships[USER].clear()  # removed from the organization
    later.offset = 29
    assert auth.verify(token)
    later.offset = 31
    assert _refused(auth, token).reason == "organization-mismatch"
    assert len(issuer.backend_requests) == 2
    issuer.add_membership(USER, ORG_ID)
    auth.forget_user(USER)  # e.g. from an organizationMembership.created webhook
    assert auth.verify(token)
    assert len(issuer.backend_requests) == 3


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        (Fault(status=500), "HTTP 500"),
        (Fault(status=401), "secret key"),
        (Fault(redirect="http://127.0.0.1:9/elsewhere"), "redirect"),
        (Fault(delay=3), "timed out"),
        (Fault(drip=0.3, body=b'{"data": [], "total_count": 0}'), "timed out"),
        (Fault(endless=True), "body larger"),
        (Fault(body=b"<html>down</html>"), "not a JSON object"),
        (Fault(body=b'{"data": {}, "total_count": 0}'), "expected fields"),
        (Fault(body=b'{"data": [{"id": "orgmem_1"}], "total_count": 1}'), "without its organization"),
        (Fault(close=True), "connection"),
    ],
    ids=["500", "401", "redirect", "slow", "drip", "huge", "garbage", "shape", "no-org", "hangup"],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_outages_are_503_with_retry_after_never_401_or_403(
    issuer: LocalIssuer,
    make_auth: Callable[..., ClerkAuth],
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    why: str,
    mode: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="clerkguard")
    issuer.add_membership(USER, ORG_ID)
    auth = make_auth(organization_id=ORG_ID, http_timeout=1)
    token = issuer.mint(user_id=USER)
    issuer.set_backend_fault(fault)
    error = _refused(auth, token) if mode == "sync" else asyncio.run(_arefused(auth, token))
    assert isinstance(error, BackendUnavailable)
    assert (error.status, error.reason) == (503, "backend-api-unavailable")
    assert int(error.headers()["Retry-After"]) >= 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert why in logged
    assert issuer.secret_key not in logged
    assert token not in logged
    # Sessions whose claims decide are not affected by the outage at all.
    assert auth.verify(issuer.mint(user_id=USER, org_id=ORG_ID)).org_id == ORG_ID
    issuer.set_backend_fault(Fault())  # an outage is never remembered
    assert auth.verify(token).user_id == USER


def test_a_user_deleted_since_the_token_was_issued_is_401(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(organization_id=ORG_ID)
    issuer.set_backend_fault(status=404, body=b'{"errors":[{"code":"resource_not_found"}]}')
    error = _refused(auth, issuer.mint(user_id=USER))
    assert (error.status, error.reason) == (401, "user-not-found")


# -- machine credentials ---------------------------------------------------------------------
def test_machine_credentials(issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]) -> None:
    issuer.add_membership(USER, ORG_ID, slug=ORG_SLUG)
    by_id = make_auth(organization_id=ORG_ID)
    by_slug = make_auth(organization_slug=ORG_SLUG)
    for auth in (by_id, by_slug):
        # M2M tokens belong to the instance, not to an organization: not restricted.
        assert auth.verify(issuer.mint_m2m(), accepts_token="m2m_token").machine_id
        assert auth.verify(issuer.issue_m2m_token(), accepts_token="m2m_token").machine_id
        # Credentials acting for a user: that user's memberships decide.
        assert auth.verify(issuer.issue_api_key(subject=USER), accepts_token="api_key").user_id == USER
        assert auth.verify(issuer.mint_oauth(user_id=USER), accepts_token="oauth_token").user_id == USER
        outsider = "user_2outsideroutsideroutside0"
        error = _refused(auth, issuer.issue_oauth_token(user_id=outsider), "oauth_token")
        assert (error.status, error.reason) == (403, "organization-mismatch")
        # Another organization's API key.
        error = _refused(auth, issuer.issue_api_key(subject=OTHER_ORG), "api_key")
        assert (error.status, error.reason) == (403, "organization-mismatch")
    lookups = sorted(r.path for r in issuer.backend_requests if r.method == "GET")
    assert lookups == [  # USER and the outsider once per instance; by slug, the other organization
        f"/v1/organizations/{OTHER_ORG}",
        *[f"/v1/users/{user}/organization_memberships" for user in (USER, USER, outsider, outsider)],
    ]
    # An organization's own API key: its subject is the organization id, compared without a request.
    issuer.backend_requests.clear()
    assert by_id.verify(issuer.issue_api_key(subject=ORG_ID), accepts_token="api_key").org_id == ORG_ID
    assert [r.method for r in issuer.backend_requests] == ["POST"]  # the key's own verification only


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_by_slug_an_organization_api_key_is_matched_through_its_organization(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    later = _Later()
    monkeypatch.setattr(_users, "time", later)
    issuer.add_organization(ORG_ID, slug=ORG_SLUG)
    issuer.add_organization(OTHER_ORG, slug="other")
    auth = make_auth(organization_slug=ORG_SLUG, user_cache_ttl=30)

    def verify(key: str) -> Any:
        if mode == "sync":
            return auth.verify(key, accepts_token="api_key")
        return asyncio.run(auth.averify(key, accepts_token="api_key"))

    ours = issuer.issue_api_key(subject=ORG_ID)
    assert verify(ours).org_id == ORG_ID
    assert verify(issuer.issue_api_key(subject=ORG_ID)).org_id == ORG_ID  # the slug is cached
    lookups = [r for r in issuer.backend_requests if r.method == "GET"]
    assert [(r.path, r.query, r.authorization) for r in lookups] == [
        (f"/v1/organizations/{ORG_ID}", "", f"Bearer {issuer.secret_key}")
    ]
    with pytest.raises(AuthError) as other:
        verify(issuer.issue_api_key(subject=OTHER_ORG))
    assert (other.value.status, other.value.reason) == (403, "organization-mismatch")
    with pytest.raises(AuthError) as unknown:  # an organization Clerk does not know: refused too
        verify(issuer.issue_api_key(subject="org_2deleteddeleteddeleteddele"))
    assert unknown.value.reason == "organization-mismatch"
    # Slugs can be renamed: seen once the cached one runs out.
    issuer.organizations[ORG_ID]["slug"] = "acme-renamed"
    later.offset = 31
    with pytest.raises(AuthError) as renamed:
        verify(ours)
    assert renamed.value.reason == "organization-mismatch"
    issuer.set_backend_fault(Fault(status=500))
    later.offset = 62
    with pytest.raises(AuthError) as down:
        verify(ours)
    assert (down.value.status, down.value.reason) == (503, "backend-api-unavailable")
