"""Fetching the signed-in user (``GET /v1/users/{id}``) through the (fake, loopback) Backend API."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clerkguard import AuthError, BackendUnavailable, ClerkAuth, User, _users
from clerkguard.testing import Fault, LocalIssuer

SHAPES = json.loads((Path(__file__).parents[1] / "fixtures" / "backend_api_shapes.json").read_text())
USER = "user_2userlookuplookuplookup00"


def _error(call: Callable[[], object]) -> AuthError:
    with pytest.raises(AuthError) as info:
        call()
    return info.value


def test_the_request_has_clerks_exact_shape(issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]) -> None:
    issuer.add_user(USER)
    session = make_auth().verify(issuer.mint(user_id=USER))
    assert make_auth().user(session).id == USER
    (sent,) = issuer.backend_requests
    assert (sent.method, sent.path, sent.query, sent.body) == ("GET", f"/v1/users/{USER}", "", b"")
    assert sent.path == SHAPES["user"]["path"].replace("{user_id}", USER)
    assert sent.authorization == f"Bearer {issuer.secret_key}"


def test_the_recorded_answer_reads_into_a_user_and_the_fake_serves_every_required_member(
    issuer: LocalIssuer,
) -> None:
    recorded = SHAPES["user"]["answer"]
    user = User(recorded)
    assert (user.id, user.first_name, user.last_name, user.username) == (
        recorded["id"],
        "Ada",
        "Lovelace",
        "ada",
    )
    assert user.full_name == "Ada Lovelace"
    # The primary address is found by its id, not by its position; it comes first in the list.
    assert user.primary_email_address == "ada@example.com"
    assert user.email_addresses == ("ada@example.com", "ada@work.example")
    assert user.public_metadata["tenant"]["region"] == "eu"
    assert (user.created_at, user.updated_at) == (1744928754.551, 1744928760.0)
    assert user.last_sign_in_at == 1744928800.0
    assert user.image_url == recorded["image_url"]
    assert user.raw["private_metadata"] == {"stripe": "cus_123"}
    served = issuer.add_user(USER)
    assert set(SHAPES["user"]["required"]) <= set(served)
    assert set(SHAPES["user"]["required"]) <= set(recorded)


def test_a_user_is_immutable_read_only_and_keeps_personal_data_out_of_its_repr() -> None:
    user = User(SHAPES["user"]["answer"])
    with pytest.raises(AttributeError):
        user.first_name = "Eve"  # type: ignore[misc]
    with pytest.raises(TypeError):
        user.public_metadata["plan"] = "free"  # type: ignore[index]
    with pytest.raises(TypeError):
        user.raw["email_addresses"][0]["email_address"] = "eve@example.com"  # type: ignore[index]
    assert repr(user) == f"User(id={user.id!r})"
    assert User(dict(SHAPES["user"]["answer"])) == user


def test_odd_members_read_as_none_instead_of_failing() -> None:
    user = User(
        {"id": "user_1", "first_name": 5, "email_addresses": "x", "public_metadata": [], "created_at": True}
    )
    assert (user.first_name, user.primary_email_address, user.email_addresses) == (None, None, ())
    assert (dict(user.public_metadata), user.created_at, user.full_name) == ({}, None, None)
    with pytest.raises(ValueError):
        User({"first_name": "no id"})


def test_n_lookups_of_one_user_make_one_call_sync_and_async(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    issuer.add_user(USER)
    auth = make_auth()
    users = [auth.user(USER) for _ in range(50)]
    assert all(u is users[0] for u in users)
    assert asyncio.run(auth.auser(USER)) is users[0]
    assert len(issuer.backend_requests) == 1


def test_200_threads_and_200_tasks_on_one_new_user_make_one_call(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    issuer.add_user(USER)
    auth = make_auth(http_timeout=5)
    issuer.set_backend_fault(delay=0.5)  # everyone arrives while the one call is in flight
    found: list[str] = []
    start = threading.Barrier(201)

    def in_thread() -> None:
        start.wait()
        found.append(auth.user(USER).id)

    async def tasks() -> list[str]:
        start.wait()
        return [u.id for u in await asyncio.gather(*(auth.auser(USER) for _ in range(200)))]

    threads = [threading.Thread(target=in_thread) for _ in range(200)]
    for thread in threads:
        thread.start()
    found += asyncio.run(tasks())
    for thread in threads:
        thread.join()
    assert found == [USER] * 400
    assert len(issuer.backend_requests) == 1


class _Later:
    """``time`` for `clerkguard._users`, running ``offset`` seconds ahead."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def test_an_answer_is_reused_for_user_cache_ttl_then_fetched_again(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], monkeypatch: pytest.MonkeyPatch
) -> None:
    later = _Later()
    monkeypatch.setattr(_users, "time", later)
    issuer.add_user(USER, first_name="Ada")
    auth = make_auth(user_cache_ttl=30)
    assert auth.user(USER).first_name == "Ada"
    issuer.users[USER]["first_name"] = "Augusta"
    later.offset = 29
    assert auth.user(USER).first_name == "Ada"
    later.offset = 31
    assert auth.user(USER).first_name == "Augusta"
    assert len(issuer.backend_requests) == 2
    # forget_user() drops the cached answer at once (for user.updated webhooks).
    issuer.users[USER]["first_name"] = "Lady"
    auth.forget_user(USER)
    assert auth.user(USER).first_name == "Lady"
    assert len(issuer.backend_requests) == 3


def test_an_unknown_user_is_401_user_not_found_and_remembered(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    for _ in range(3):
        error = _error(lambda: auth.user("user_deleted0000000000000000"))
        assert (error.status, error.reason) == (401, "user-not-found")
    assert asyncio.run(_aerror(auth, "user_deleted0000000000000000")).reason == "user-not-found"
    assert len(issuer.backend_requests) == 1


async def _aerror(auth: ClerkAuth, user_id: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        await auth.auser(user_id)
    return info.value


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        (Fault(status=500), "HTTP 500"),
        (Fault(status=429), "HTTP 429"),
        (Fault(status=401), "secret key"),
        (Fault(redirect="http://127.0.0.1:9/elsewhere"), "redirect"),
        (Fault(delay=3), "timed out"),
        (Fault(drip=0.3, body=b'{"id": "user_1", "first_name": "Ada"}'), "timed out"),
        (Fault(endless=True), "body larger"),
        (Fault(body=b"<html>down</html>"), "not a Clerk user object"),
        (Fault(body=b'{"id": 5}'), "not a Clerk user object"),
        (Fault(body=b'{"id": "user_1", "id": "user_2"}'), "not a Clerk user object"),
        (Fault(close=True), "connection"),
    ],
    ids=["500", "429", "401", "redirect", "slow", "drip", "huge", "garbage", "shape", "duplicate", "hangup"],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_outages_are_503_with_retry_after_never_401_and_never_remembered(
    issuer: LocalIssuer,
    make_auth: Callable[..., ClerkAuth],
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    why: str,
    mode: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="clerkguard")
    issuer.add_user(USER)
    auth = make_auth(http_timeout=1)
    issuer.set_backend_fault(fault)
    if mode == "sync":
        error = _error(lambda: auth.user(USER))
    else:
        error = asyncio.run(_aerror(auth, USER))
    assert isinstance(error, BackendUnavailable)
    assert (error.status, error.reason) == (503, "backend-api-unavailable")
    assert int(error.headers()["Retry-After"]) >= 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert why in logged
    assert issuer.secret_key not in logged
    issuer.set_backend_fault(Fault())
    assert auth.user(USER).id == USER


def test_without_a_secret_key_a_lookup_is_a_503_and_sends_nothing(issuer: LocalIssuer) -> None:
    with issuer.auth() as auth:  # publishable key only
        error = _error(lambda: auth.user(USER))
    assert (error.status, error.reason) == (503, "backend-api-unavailable")
    assert not issuer.backend_requests


def test_who_must_name_a_user_and_nothing_odd_reaches_a_url(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    machine = auth.verify(issuer.mint_m2m(), accepts_token="m2m_token")
    for who in (machine, "../jwks", "user_1/organization_memberships", "user_1?x=1", "", "u" * 200, 5):
        with pytest.raises(ValueError):
            auth.user(who)  # type: ignore[arg-type]
    assert not issuer.backend_requests
    # An OAuth token acting for a user names that user.
    issuer.add_user(USER)
    oauth = auth.verify(issuer.issue_oauth_token(user_id=USER), accepts_token="oauth_token")
    assert auth.user(oauth).id == USER


async def test_close_aborts_a_lookup_in_flight_with_503(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    issuer.add_user(USER)
    auth = make_auth(http_timeout=5)
    issuer.set_backend_fault(delay=3)
    pending = asyncio.ensure_future(auth.auser(USER))
    while not issuer.backend_requests:
        await asyncio.sleep(0.01)
    await auth.aclose()
    with pytest.raises(AuthError) as info:
        await asyncio.wait_for(pending, 2)
    assert info.value.status == 503
