"""The Backend API for session users: user objects and organization membership.

`UserDirectory` fetches ``GET {api_url}/v1/users/{id}`` (for
[`ClerkAuth.user`][clerkguard.ClerkAuth.user]),
``GET {api_url}/v1/users/{id}/organization_memberships?limit=&offset=`` (for
the ``organization_id``/``organization_slug`` restriction) and
``GET {api_url}/v1/organizations/{id}`` (the slug of an organization API
key's organization, under ``organization_slug``), with the same
hardened request as every other fetch (`clerkguard._http`: whole-request
deadline, size cap, no redirects, strict JSON, credentials never logged),
under `SingleFlight` (one request per user and question, joined by every
thread and task asking meanwhile), and caches the answers per user for
``user_cache_ttl`` in a bounded map. "No such user" is an answer (cached);
an outage is not (503, never cached).

`OrganizationRule` is the restriction: the active organization of a
session's claims decides without any request (v1 ``org_id``/``org_slug``
and v2 ``o.id``/``o.slg`` alike, both decoded by `Session`); only when it
is absent or another one does the membership list decide.

``tests/fixtures/backend_api_shapes.json`` pins the paths and answers.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from ._backend import BackendUnavailable
from ._cache import BoundedCache
from ._core.jsonstrict import StrictJSONError, loads_object
from ._flight import SingleFlight
from ._http import FetchControl, FetchError, HTTPRequest, HTTPResponse, request_async, request_sync
from .config import safe_url
from .errors import Forbidden, NotAuthenticated
from .machine import M2M_TOKEN, MachineCredential
from .session import Session
from .users import User

__all__ = ["OrganizationRule", "UserDirectory", "check_member", "mismatch", "valid_user_id"]

logger = logging.getLogger("clerkguard.backend")

#: Largest user object read (metadata is capped at 8 KiB per kind by Clerk).
MAX_USER_BYTES = 256 * 1024
#: Largest page of memberships read (a page holds `PAGE_SIZE` memberships with their organizations).
MAX_PAGE_BYTES = 2 * 2**20
#: Memberships asked per page (Clerk allows 1 to 500).
PAGE_SIZE = 100
#: Most pages read for one user (Clerk refuses offsets beyond 10000).
MAX_PAGES = 100
#: Nesting allowed in an answer (metadata is the user's own JSON).
MAX_DEPTH = 64
_WARN_EVERY = 60.0
#: What a Clerk user id can look like; anything else never reaches a URL.
_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ANSWERED = frozenset({200, 404})


def valid_user_id(user_id: object) -> bool:
    """True for a string that can be a Clerk user id (safe in a URL path)."""
    return isinstance(user_id, str) and _USER_ID.fullmatch(user_id) is not None


@dataclass(frozen=True, slots=True)
class _NotFound:
    """404: no such user (cached)."""


@dataclass(frozen=True, slots=True)
class _Unavailable:
    """No answer (503; never cached)."""

    log: str


_NOT_FOUND = _NotFound()
_UserOutcome = User | _NotFound | _Unavailable
_MemberOutcome = bool | _NotFound | _Unavailable
_SlugOutcome = str | _NotFound | _Unavailable
_T = TypeVar("_T")
#: Largest organization object read.
MAX_ORGANIZATION_BYTES = 64 * 1024


def _not_found() -> NotAuthenticated:
    return NotAuthenticated("user-not-found", "the user of this session no longer exists")


class UserDirectory:
    """Users and their organization memberships, from the Backend API, cached per user.

    Args:
        api_url: Backend API base URL (validated by the caller).
        secret_key: The instance secret key (``sk_...``), or ``None`` (then every lookup is a 503).
        timeout: Bound on one whole lookup (every page of it), and on any wait for one.
        ttl: Seconds an answer (a user, "no such user", a membership verdict) is reused.
        cache_size: Most users remembered (0: none).
        transport: An ``httpx`` transport used instead of the network.
    """

    def __init__(
        self,
        *,
        api_url: str,
        secret_key: str | None,
        timeout: float,
        ttl: float,
        cache_size: int,
        transport: Any = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._secret_key = secret_key
        self.timeout = timeout
        self.ttl = ttl
        self._transport = transport
        # "u:<id>" -> (User | _NotFound, until); "m:<org>:<id>" -> (bool | _NotFound, until).
        self.cache: BoundedCache[tuple[Any, float]] = BoundedCache(cache_size, 32 * 2**20)
        self._users: SingleFlight[str, _UserOutcome] = SingleFlight(timeout, _Unavailable)
        self._members: SingleFlight[str, _MemberOutcome] = SingleFlight(timeout, _Unavailable)
        self._slugs: SingleFlight[str, _SlugOutcome] = SingleFlight(timeout, _Unavailable)
        self._last_warning = float("-inf")
        #: Requests sent (tests and stats).
        self.requests = 0

    def __repr__(self) -> str:
        return f"UserDirectory(api_url={safe_url(self.api_url)!r})"

    # -- cache ------------------------------------------------------------------------
    def _lookup(self, key: str) -> Any:
        found = self.cache.get(key)
        if found is None:
            return None
        outcome, until = found
        if time.monotonic() >= until:
            self.cache.discard(key)
            return None
        return outcome

    def _store(self, key: str, outcome: Any, size: int) -> None:
        if not isinstance(outcome, _Unavailable):  # an outage is never remembered
            self.cache.put(key, (outcome, time.monotonic() + self.ttl), size)

    def forget(self, user_id: str) -> None:
        """Drop every cached answer about ``user_id``."""
        suffix = ":" + user_id
        for key in [k for k in list(self.cache.entries) if k.endswith(suffix)]:
            self.cache.discard(key)

    # -- requests ---------------------------------------------------------------------
    def _get(self, path: str, query: dict[str, int] | None, max_bytes: int) -> HTTPRequest | _Unavailable:
        if self._secret_key is None:
            return _Unavailable("no secret_key configured")
        self.requests += 1
        url = self.api_url + path + ("?" + urlencode(query) if query else "")
        return HTTPRequest(
            "GET", url, {"Authorization": f"Bearer {self._secret_key}"}, max_bytes=max_bytes, accept=_ANSWERED
        )

    def _failed(self, error: FetchError) -> _Unavailable:
        if error.status in (401, 403):
            return _Unavailable(f"{error} (is the secret key right?)")
        return _Unavailable(str(error))

    @staticmethod
    def _user(response: HTTPResponse) -> _UserOutcome:
        if response.status == 404:
            return _NOT_FOUND
        try:
            return User(loads_object(response.body, MAX_DEPTH))
        except (StrictJSONError, ValueError):
            return _Unavailable("answer is not a Clerk user object")

    @staticmethod
    def _page(
        response: HTTPResponse, org_id: str | None, slug: str | None
    ) -> tuple[bool, int] | _MemberOutcome:
        """(found, memberships on this page) of one page, or the final outcome."""
        if response.status == 404:
            return _NOT_FOUND
        try:
            data = loads_object(response.body, MAX_DEPTH)
        except StrictJSONError:
            return _Unavailable("answer is not a JSON object")
        items, total = data.get("data"), data.get("total_count")
        if not isinstance(items, list) or isinstance(total, bool) or not isinstance(total, int):
            return _Unavailable("answer does not have the expected fields")
        for item in items:
            org = item.get("organization") if isinstance(item, dict) else None
            if not isinstance(org, dict):
                return _Unavailable("a membership without its organization")
            if (org_id is not None and org.get("id") == org_id) or (
                slug is not None and org.get("slug") == slug
            ):
                return True, len(items)
        return False, len(items)

    def _warn(self, what: str, why: str) -> None:
        now = time.monotonic()
        loud = now - self._last_warning >= _WARN_EVERY
        if loud:
            self._last_warning = now
        path = safe_url(self.api_url + what)
        logger.log(logging.WARNING if loud else logging.DEBUG, "Backend API %s failed: %s", path, why)

    def _unavailable(self, what: str, outcome: _Unavailable) -> BackendUnavailable:
        self._warn(what, outcome.log)
        return BackendUnavailable()

    # -- one object: cache, then one shared request ------------------------------------
    def _one_sync(
        self,
        flight: SingleFlight[str, _T],
        key: str,
        request: Callable[[], HTTPRequest | _Unavailable],
        judge: Callable[[HTTPResponse], _T],
    ) -> _T:
        """The cached outcome of ``key``, else one request shared by every thread and task."""
        outcome = self._lookup(key)
        if outcome is not None:
            return outcome  # type: ignore[no-any-return]

        def operation(control: FetchControl) -> _T:
            prepared = request()
            if isinstance(prepared, _Unavailable):
                return prepared  # type: ignore[return-value]  # every _T admits _Unavailable
            try:
                return judge(request_sync(prepared, control, self._transport))
            except FetchError as exc:
                return self._failed(exc)  # type: ignore[return-value]

        return flight.run_sync(key, operation)

    async def _one_async(
        self,
        flight: SingleFlight[str, _T],
        key: str,
        request: Callable[[], HTTPRequest | _Unavailable],
        judge: Callable[[HTTPResponse], _T],
    ) -> _T:
        """`_one_sync` from a coroutine."""
        outcome = self._lookup(key)
        if outcome is not None:
            return outcome  # type: ignore[no-any-return]

        async def operation() -> _T:
            prepared = request()
            if isinstance(prepared, _Unavailable):
                return prepared  # type: ignore[return-value]
            try:
                return judge(await request_async(prepared, self.timeout, self._transport))
            except FetchError as exc:
                return self._failed(exc)  # type: ignore[return-value]

        return await flight.run_async(key, operation)

    # -- users ------------------------------------------------------------------------
    def _user_outcome(self, user_id: str, outcome: _UserOutcome) -> User:
        if isinstance(outcome, User):
            return outcome
        if isinstance(outcome, _NotFound):
            raise _not_found()
        raise self._unavailable("/v1/users/{user_id}", outcome)

    def _land_user(self, key: str, outcome: _UserOutcome) -> _UserOutcome:
        size = 512 if not isinstance(outcome, User) else 2048 + 3 * len(repr(outcome.raw))
        self._store(key, outcome, size)
        return outcome

    def user_sync(self, user_id: str) -> User:
        """The user ``user_id`` (a valid id), from the cache or one request."""
        key = "u:" + user_id
        request = lambda: self._get("/v1/users/" + user_id, None, MAX_USER_BYTES)  # noqa: E731
        outcome = self._one_sync(self._users, key, request, lambda r: self._land_user(key, self._user(r)))
        return self._user_outcome(user_id, outcome)

    async def user_async(self, user_id: str) -> User:
        """`user_sync` from a coroutine; never blocks the loop."""
        key = "u:" + user_id
        request = lambda: self._get("/v1/users/" + user_id, None, MAX_USER_BYTES)  # noqa: E731
        outcome = await self._one_async(
            self._users, key, request, lambda r: self._land_user(key, self._user(r))
        )
        return self._user_outcome(user_id, outcome)

    # -- memberships ------------------------------------------------------------------
    def _member_outcome(self, outcome: _MemberOutcome) -> bool:
        if isinstance(outcome, bool):
            return outcome
        if isinstance(outcome, _NotFound):
            raise _not_found()
        raise self._unavailable("/v1/users/{user_id}/organization_memberships", outcome)

    def _membership_request(self, user_id: str, page: int) -> HTTPRequest | _Unavailable:
        query = {"limit": PAGE_SIZE, "offset": page * PAGE_SIZE}
        return self._get(f"/v1/users/{user_id}/organization_memberships", query, MAX_PAGE_BYTES)

    def _judge_page(
        self, key: str, response: HTTPResponse, page: int, org_id: str | None, slug: str | None
    ) -> _MemberOutcome | None:
        """The final outcome after ``page``, or ``None`` to read the next one."""
        judged = self._page(response, org_id, slug)
        if not isinstance(judged, tuple):
            self._store(key, judged, 256)
            return judged
        found, count = judged
        if found or count < PAGE_SIZE or page + 1 >= MAX_PAGES:
            self._store(key, found, 256)
            return found
        return None

    def member_sync(self, user_id: str, org_id: str | None, slug: str | None) -> bool:
        """Whether ``user_id`` belongs to the organization (by id or slug); cached per user."""
        key = f"m:{org_id or slug}:{user_id}"
        outcome = self._lookup(key)
        if outcome is None:

            def operation(control: FetchControl) -> _MemberOutcome:
                for page in range(MAX_PAGES):
                    request = self._membership_request(user_id, page)
                    if isinstance(request, _Unavailable):
                        return request
                    try:
                        response = request_sync(request, control, self._transport)
                    except FetchError as exc:
                        return self._failed(exc)
                    final = self._judge_page(key, response, page, org_id, slug)
                    if final is not None:
                        return final
                return False  # unreachable: the last page is final

            outcome = self._members.run_sync(key, operation)
        return self._member_outcome(outcome)

    async def member_async(self, user_id: str, org_id: str | None, slug: str | None) -> bool:
        """`member_sync` from a coroutine; never blocks the loop."""
        key = f"m:{org_id or slug}:{user_id}"
        outcome = self._lookup(key)
        if outcome is None:

            async def operation() -> _MemberOutcome:
                deadline = time.monotonic() + self.timeout
                for page in range(MAX_PAGES):
                    request = self._membership_request(user_id, page)
                    if isinstance(request, _Unavailable):
                        return request
                    try:
                        left = deadline - time.monotonic()
                        response = await request_async(request, max(left, 0.001), self._transport)
                    except FetchError as exc:
                        return self._failed(exc)
                    final = self._judge_page(key, response, page, org_id, slug)
                    if final is not None:
                        return final
                return False  # unreachable: the last page is final

            outcome = await self._members.run_async(key, operation)
        return self._member_outcome(outcome)

    # -- organizations ----------------------------------------------------------------
    @staticmethod
    def _slug(response: HTTPResponse) -> _SlugOutcome:
        if response.status == 404:
            return _NOT_FOUND
        try:
            data = loads_object(response.body, MAX_DEPTH)
        except StrictJSONError:
            return _Unavailable("answer is not a JSON object")
        slug = data.get("slug")
        if not isinstance(slug, str) or not isinstance(data.get("id"), str):
            return _Unavailable("answer is not a Clerk organization object")
        return slug

    def _slug_outcome(self, outcome: _SlugOutcome) -> str | None:
        if isinstance(outcome, str):
            return outcome
        if isinstance(outcome, _NotFound):
            return None
        raise self._unavailable("/v1/organizations/{organization_id}", outcome)

    def _land_slug(self, key: str, outcome: _SlugOutcome) -> _SlugOutcome:
        self._store(key, outcome, 256)
        return outcome

    def slug_sync(self, org_id: str) -> str | None:
        """The slug of organization ``org_id`` (``None``: no such organization); cached."""
        key = "o:" + org_id
        request = lambda: self._get("/v1/organizations/" + org_id, None, MAX_ORGANIZATION_BYTES)  # noqa: E731
        outcome = self._one_sync(self._slugs, key, request, lambda r: self._land_slug(key, self._slug(r)))
        return self._slug_outcome(outcome)

    async def slug_async(self, org_id: str) -> str | None:
        """`slug_sync` from a coroutine; never blocks the loop."""
        key = "o:" + org_id
        request = lambda: self._get("/v1/organizations/" + org_id, None, MAX_ORGANIZATION_BYTES)  # noqa: E731
        outcome = await self._one_async(
            self._slugs, key, request, lambda r: self._land_slug(key, self._slug(r))
        )
        return self._slug_outcome(outcome)

    def close(self) -> None:
        """Abort lookups in flight (their waiters get 503)."""
        self._users.cancel_all()
        self._members.cancel_all()
        self._slugs.cancel_all()


class OrganizationRule:
    """Every credential must belong to one organization (``organization_id`` or ``organization_slug``).

    `pending` decides from the credential alone; a user id it returns is
    decided by that user's memberships (`UserDirectory.member_sync` /
    ``member_async``), an organization id (``org_...``, an organization API
    key under ``organization_slug``) by that organization's slug
    (`UserDirectory.slug_sync` / ``slug_async``).
    """

    __slots__ = ("field", "org_id", "slug", "value")

    def __init__(self, org_id: str | None, slug: str | None) -> None:
        self.org_id = org_id
        self.slug = slug
        #: The index in ``Session._org_fields()`` (id 0, slug 2) and the value it must have.
        self.field = 0 if org_id is not None else 2
        self.value = org_id if org_id is not None else slug

    def pending(self, credential: Session | MachineCredential) -> tuple[bool, str] | None:
        """``None`` when ``credential`` passes as it is; else ``(is_organization, id)`` of who decides.

        Raises:
            Forbidden: when the credential is decided out (an organization
                credential of another organization).
        """
        if type(credential) is Session:
            # The active organization (v1 org_id/org_slug, v2 o.id/o.slg): no request.
            if self.org_id is not None:
                if credential.org_id == self.org_id:
                    return None
            elif credential.org_slug == self.slug:
                return None
            return False, self._member(credential.user_id)
        assert isinstance(credential, MachineCredential)
        if credential.token_type == M2M_TOKEN:
            return None  # machines belong to the instance, not to an organization
        subject = credential.subject
        if subject.startswith("org_"):
            if self.org_id is None and valid_user_id(subject):
                return True, subject  # its slug decides
            if subject == self.org_id:
                return None
            raise mismatch()
        if subject.startswith("user_"):
            return False, self._member(subject)
        raise mismatch()

    @staticmethod
    def _member(user_id: str) -> str:
        if not valid_user_id(user_id):
            raise mismatch()
        return user_id

    def __repr__(self) -> str:
        which = f"id={self.org_id!r}" if self.org_id is not None else f"slug={self.slug!r}"
        return f"OrganizationRule({which})"


def mismatch() -> Forbidden:
    """The 403 of a credential outside the configured organization."""
    return Forbidden("organization-mismatch", "this application is restricted to another organization")


def check_member(member: bool) -> None:
    """Raise the 403 unless the membership list said yes."""
    if not member:
        raise mismatch()
