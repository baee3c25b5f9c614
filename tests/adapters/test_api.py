"""The public adapter API and the rules, driven through a minimal in-memory adapter.

``DictAdapter`` is a complete adapter on the public API (the way a user
writes one): requests are plain objects, so these tests pin the guard's own
decisions (token sources, options, sync/async equivalence, rule semantics,
wrapper kinds) without any framework in between.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clerkguard import AuthError, ClerkAuth, ConfigurationError, Forbidden, Session
from clerkguard.adapters import (
    Adapter,
    Guard,
    Preflight,
    auth_from_config,
    build_require_auth,
    client_uat_names_for,
    cookie_names_for,
    guard_of,
    origin_matches_host,
    parse_cookies,
    token_from_authorization,
    token_from_authorization_values,
    unguarded_views,
)
from clerkguard.rules import all_of, any_of, has_permission, has_role, in_org, rules_from
from clerkguard.testing import LocalIssuer, cookie_header, session_cookies

Mint = Callable[..., str]


@dataclass
class Req:
    """A request as far as the guard is concerned."""

    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    session: Session | None = None
    stored: bool = False


class DictAdapter(Adapter[Req]):
    """The six hooks over :class:`Req`; handlers receive the request first."""

    def header(self, request: Req, name: str) -> str | None:
        if name == "cookie" and request.cookies:
            return cookie_header(request.cookies)
        return {k.lower(): v for k, v in request.headers.items()}.get(name)

    def method(self, request: Req) -> str:
        return request.method

    def find_request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Req:
        request = args[0]
        assert isinstance(request, Req)
        return request

    def store(self, request: Req, session: Session | None) -> None:
        request.session, request.stored = session, True

    def reject(self, request: Req, error: AuthError) -> Any:
        return ("rejected", error.status, error.reason)

    def options_response(self, request: Req) -> Any:
        return ("options", 204)


def guard(auth: ClerkAuth, **options: Any) -> Guard[Req]:
    return build_require_auth(DictAdapter(auth)).guard(**options)


def decide(g: Guard[Req], request: Req) -> tuple[int, str | None]:
    """(status, reason) of the sync check; ``(204, "preflight")`` for an OPTIONS the framework answers."""
    try:
        g.check(request)
    except AuthError as error:
        return error.status, error.reason
    except Preflight:
        return 204, "preflight"
    return 200, None


async def adecide(g: Guard[Req], request: Req) -> tuple[int, str | None]:
    try:
        await g.acheck(request)
    except AuthError as error:
        return error.status, error.reason
    except Preflight:
        return 204, "preflight"
    return 200, None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestTokenSources:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, None),
            ("", None),
            ("Basic dXNlcjpwYXNz", None),
            ("Bearer abc.def.ghi", "abc.def.ghi"),
            ("bearer   abc.def.ghi  ", "abc.def.ghi"),
            ("BEARER x", "x"),
            ("Bearer", ""),
            ("Bearerx abc", None),
        ],
    )
    def test_authorization_header_parsing(self, value: str | None, expected: str | None) -> None:
        assert token_from_authorization(value) == expected

    def test_cookie_only_ignores_the_header(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        g = guard(clerk_auth, token_sources=("cookie",))
        assert decide(g, Req(headers=bearer(clerk_token()))) == (401, "token-missing")
        assert decide(g, Req(cookies=session_cookies(clerk_token()))) == (200, None)

    def test_header_only_ignores_the_cookie(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        g = guard(clerk_auth, token_sources=("header",))
        assert decide(g, Req(cookies=session_cookies(clerk_token()))) == (401, "token-missing")

    def test_cookie_first_when_asked(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        g = guard(clerk_auth, token_sources=("cookie", "header"))
        request = Req(headers=bearer("garbage"), cookies=session_cookies(clerk_token()))
        assert decide(g, request) == (200, None)

    def test_custom_cookie_names(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        g = guard(clerk_auth, cookie_names=["app_session"])
        token = clerk_token()
        cookies = {"app_session": token, "__client_uat": session_cookies(token)["__client_uat"]}
        assert decide(g, Req(cookies=cookies)) == (200, None)
        assert decide(g, Req(cookies=session_cookies(clerk_token()))) == (401, "token-missing")

    def test_suffixed_cookie_wins_over_the_plain_one(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        suffixed, plain = cookie_names_for(clerk_auth)
        assert plain == "__session"
        assert suffixed.startswith("__session_")
        assert len(suffixed) == len("__session_") + 8
        token = clerk_token(user_id="user_suffixed")
        uat = session_cookies(token)["__client_uat"]
        uat_suffixed = client_uat_names_for(clerk_auth)[0]
        request = Req(cookies={suffixed: token, plain: "garbage", uat_suffixed: uat, "__client_uat": "0"})
        g = guard(clerk_auth)
        session = g.check(request)
        assert session is not None
        assert session.user_id == "user_suffixed"

    def test_empty_cookie_is_no_token(self, clerk_auth: ClerkAuth) -> None:
        assert decide(guard(clerk_auth), Req(cookies={"__session": ""})) == (401, "token-missing")

    def test_options_guarded_when_asked(self, clerk_auth: ClerkAuth) -> None:
        assert decide(guard(clerk_auth), Req(method="OPTIONS")) == (204, "preflight")
        strict = guard(clerk_auth, allow_options=False)
        assert decide(strict, Req(method="OPTIONS")) == (401, "token-missing")


#: A guard that never gets as far as verifying (no key source is contacted).
_HEADER_ONLY = guard(
    ClerkAuth(jwks_uri="http://127.0.0.1:9/jwks.json", issuer="http://127.0.0.1:9", env={}),
    token_sources=("header",),
)


class TestRequestParsing:
    """What must be identical in every framework is decided here, once."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("Bearer\tabc", "abc"),
            ("Bearer\n abc", "abc"),
            ("  Bearer abc", "abc"),
            ("Bearer\u00a0abc", "abc"),  # any whitespace, as str.isspace says
            ("Bearer\t", ""),
            ("Token abc", None),
            ("abc.def.ghi", None),
        ],
    )
    def test_bearer_followed_by_any_whitespace(self, value: str, expected: str | None) -> None:
        assert token_from_authorization(value) == expected

    @settings(max_examples=500, deadline=None)
    @given(
        st.one_of(
            st.text(max_size=24),
            st.text(alphabet=" \t\u00a0,=.aBbe", max_size=24).map(lambda rest: "Bearer" + rest),
        )
    )
    def test_the_inline_bearer_path_agrees_with_the_parser(self, value: str) -> None:
        # Guard._start decides "Bearer <token>" inline (the hot path); it must
        # give exactly what the general parser gives, for any header value.
        expected: tuple[str, str | None]
        try:
            token = token_from_authorization_values([value])
        except AuthError as error:
            expected = ("refused", error.reason)
        else:
            if token is None:
                expected = ("refused", "token-missing")
            elif not token:
                expected = ("refused", "token-malformed")
            else:
                expected = ("header", token)
        try:
            started = _HEADER_ONLY._start(Req(headers={"Authorization": value}))
        except AuthError as error:
            actual: tuple[str, str | None] = ("refused", error.reason)
        else:
            assert started is not None
            actual = (started[2], started[1])
        assert actual == expected

    @pytest.mark.parametrize(
        "values",
        [
            ["Bearer a", "Bearer b"],
            ["Bearer a", "Bearer a"],
            ["Bearer a, Bearer b"],  # what a WSGI server makes of two lines
            ["Basic eDp5", "Bearer a"],
            ["Bearer a,b"],
            ["Basic eDp5", "Basic eDp6"],
        ],
    )
    def test_two_credentials_are_ambiguous(self, values: list[str]) -> None:
        with pytest.raises(AuthError) as caught:
            token_from_authorization_values(values)
        assert (caught.value.status, caught.value.reason) == (401, "token-ambiguous")

    def test_one_credential_with_auth_params_is_not_ambiguous(self) -> None:
        assert token_from_authorization_values(['Digest username="x", realm="y"']) is None
        assert token_from_authorization_values([]) is None
        assert token_from_authorization_values(["Bearer abc"]) == "abc"

    def test_cookie_parser(self) -> None:
        names = ("__session", "__client_uat")
        assert parse_cookies(['a=1; __session="tok"; __client_uat=5'], names) == {
            "__session": "tok",
            "__client_uat": "5",
        }
        assert parse_cookies(["__session=; __session=tok"], names) == {"__session": "tok"}
        assert parse_cookies(["__session=tok", "__session=tok"], names) == {"__session": "tok"}
        assert parse_cookies(["x__session=1; __sessionx=2; __session"], names) == {}
        with pytest.raises(AuthError) as caught:
            parse_cookies(["__session=a; __session=b"], names)
        assert caught.value.reason == "token-ambiguous"
        assert "a" not in caught.value.detail.split()

    @pytest.mark.parametrize(
        ("origin", "host", "expected"),
        [
            ("https://api.example.com", "api.example.com", True),
            ("https://api.example.com", "api.example.com:443", True),
            ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
            ("http://[::1]:8000", "[::1]:8000", True),
            ("HTTPS://API.example.com", "api.EXAMPLE.com", True),
            ("https://api.example.com", "api.example.com:8443", False),
            ("https://evil.example.com", "api.example.com", False),
            ("null", "api.example.com", False),
            ("https://api.example.com", None, False),
            ("https://user@api.example.com", "api.example.com", False),
            ("https://api.example.com:99999", "api.example.com", False),
            ("ftp://api.example.com", "api.example.com", False),
        ],
    )
    def test_origin_matches_host(self, origin: str, host: str | None, expected: bool) -> None:
        assert origin_matches_host(origin, host) is expected


class TestCookieRules:
    def post(self, token: str, **headers: str) -> Req:
        return Req(method="POST", headers=headers, cookies=session_cookies(token))

    def test_origin_equal_to_host_passes(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        g = guard(clerk_auth)
        request = self.post(clerk_token(), Origin="https://api.example.com", Host="api.example.com")
        assert decide(g, request) == (200, None)
        request = self.post(clerk_token(), Origin="https://app.example.com", Host="api.example.com")
        assert decide(g, request) == (403, "cross-site-request")

    def test_trusted_origins_option(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        g = guard(clerk_auth, trusted_origins=["https://app.example.com"])
        request = self.post(
            clerk_token(), Origin="https://app.example.com", **{"Sec-Fetch-Site": "same-site"}
        )
        assert decide(g, request) == (200, None)
        with pytest.raises(ConfigurationError):
            guard(clerk_auth, trusted_origins="https://app.example.com")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            guard(clerk_auth, trusted_origins=["app.example.com"])

    def test_checks_can_be_turned_off(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        token = clerk_token()
        cross = Req(method="POST", headers={"Origin": "https://evil.example"}, cookies={"__session": token})
        assert decide(guard(clerk_auth), cross) == (401, "session-token-without-client-uat")
        assert decide(guard(clerk_auth, check_client_uat=False), cross) == (403, "cross-site-request")
        assert decide(guard(clerk_auth, check_client_uat=False, check_origin=False), cross) == (200, None)

    def test_websocket_handshake_is_origin_checked(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        class SocketAdapter(DictAdapter):
            def is_websocket(self, request: Req) -> bool:
                return True

        g = build_require_auth(SocketAdapter(clerk_auth)).guard()
        token = clerk_token()
        handshake = Req(headers={"Origin": "https://evil.example"}, cookies=session_cookies(token))
        assert decide(g, handshake) == (403, "cross-site-request")
        handshake = Req(headers={"Origin": "https://evil.example", **bearer(token)})
        assert decide(g, handshake) == (200, None)

    def test_non_bearer_header_says_so(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        g = guard(clerk_auth)
        for headers in ({"Authorization": clerk_token()}, {"Authorization": f"Token {clerk_token()}"}):
            with pytest.raises(AuthError) as caught:
                g.check(Req(headers=headers))
            assert caught.value.reason == "token-missing"
            assert "without the Bearer scheme" in caught.value.detail
        with pytest.raises(AuthError) as caught:
            g.check(Req())
        assert caught.value.detail == "no session token was provided"


class TestRefusalLog:
    def test_debug_line_has_facts_never_the_token(
        self, clerk_auth: ClerkAuth, clerk_issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
    ) -> None:
        expired = clerk_issuer.mint(issued_at=clerk_issuer.clock() - 3600, azp="https://app.example.com")
        forged = LocalIssuer(kid=clerk_issuer.kid).mint()
        g = guard(clerk_auth)
        requests = [
            Req(headers=bearer(expired)),
            Req(headers=bearer(forged)),
            Req(cookies=session_cookies(expired)),
            Req(headers=bearer("x.y")),
            Req(),
        ]
        with caplog.at_level(logging.DEBUG, logger="clerkguard"):
            for request in requests:
                with pytest.raises(AuthError):
                    g.check(request)
        lines = [r.getMessage() for r in caplog.records if r.name == "clerkguard.guard"]
        assert len(lines) == len(requests)
        assert "token-expired" in lines[0]
        assert "source=header" in lines[0]
        assert "'https://app.example.com'" in lines[0]
        assert f"kid={clerk_issuer.kid!r}" in lines[0]
        assert "token-invalid-signature" in lines[1]
        assert "source=cookie" in lines[2]
        assert "source=none" in lines[4]
        text = "\n".join(lines)
        for token in (expired, forged):
            for segment in token.split("."):
                assert segment not in text

    def test_silent_unless_debug(self, clerk_auth: ClerkAuth, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.INFO, logger="clerkguard"), pytest.raises(AuthError):
            guard(clerk_auth).check(Req(headers=bearer("x.y")))
        assert not [r for r in caplog.records if r.name == "clerkguard.guard"]


def equivalence_requests(issuer: LocalIssuer) -> list[Req]:
    admin = issuer.mint(org_role="admin")
    return [
        Req(),
        Req(headers=bearer(admin)),
        Req(headers=bearer(issuer.mint(org_role="member"))),
        Req(headers=bearer(issuer.mint(issued_at=issuer.clock() - 3600))),
        Req(headers={"Authorization": "Bearer"}),
        Req(headers={"Authorization": "Basic eDp5"}, cookies=session_cookies(admin)),
        Req(headers=bearer("x" * 9000)),
        Req(method="OPTIONS", headers=bearer("bad")),
    ]


async def test_check_and_acheck_decide_alike(clerk_auth: ClerkAuth, clerk_issuer: LocalIssuer) -> None:
    async def admins(session: Session, request: Any) -> bool:
        return session.has(role="admin")

    for options in ({}, {"role": "admin"}, {"authorize": admins}, {"optional": True}):
        g = guard(clerk_auth, **options)
        for request in equivalence_requests(clerk_issuer):
            sync = await asyncio.to_thread(decide, g, request)  # a thread: asgiref bridges there
            assert sync == await adecide(g, request), (options, request)


class TestAuthorize:
    def test_only_exactly_true_allows(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        request = Req(headers=bearer(clerk_token()))
        for result in (True, False, None, 1, "yes", [True], object()):
            g = guard(clerk_auth, authorize=lambda s, r, result=result: result)
            assert decide(g, request) == ((200, None) if result is True else (403, "authorization-denied"))

    def test_called_positionally_with_the_adapters_request(
        self, clerk_auth: ClerkAuth, clerk_token: Mint
    ) -> None:
        calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

        def spy(*args: Any, **kwargs: Any) -> bool:
            calls.append((args, kwargs))
            return True

        request = Req(headers=bearer(clerk_token(user_id="user_pos")))
        guard(clerk_auth, authorize=spy).check(request)
        ((args, kwargs),) = calls
        assert kwargs == {}
        assert isinstance(args[0], Session)
        assert args[0].user_id == "user_pos"
        assert args[1] is request

    def test_an_auth_error_from_authorize_is_kept(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        def needs_mfa(session: Session, request: Any) -> bool:
            raise Forbidden("mfa-required", "second factor needed")

        assert decide(guard(clerk_auth, authorize=needs_mfa), Req(headers=bearer(clerk_token()))) == (
            403,
            "mfa-required",
        )

    async def test_a_failing_coroutine_is_a_logged_403(
        self, clerk_auth: ClerkAuth, clerk_token: Mint, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def broken(session: Session, request: Any) -> bool:
            raise KeyError("db row")

        g = guard(clerk_auth, authorize=broken)
        request = Req(headers=bearer(clerk_token()))
        with caplog.at_level(logging.WARNING, logger="clerkguard.guard"):
            assert await adecide(g, request) == (403, "authorization-error")
            assert await asyncio.to_thread(decide, g, request) == (403, "authorization-error")
        assert caplog.text.count("KeyError") >= 2

    async def test_sync_check_on_an_event_loop_fails_closed(
        self, clerk_auth: ClerkAuth, clerk_token: Mint
    ) -> None:
        # asgiref refuses to bridge on a loop's thread: deny, don't hang or 500.
        async def allow(session: Session, request: Any) -> bool:
            return True

        g = guard(clerk_auth, authorize=allow)
        assert decide(g, Req(headers=bearer(clerk_token()))) == (403, "authorization-error")

    def test_rules_run_before_authorize(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        called: list[str] = []

        def spy(session: Session, request: Any) -> bool:
            called.append(session.user_id)
            return True

        g = guard(clerk_auth, role="admin", authorize=spy)
        assert decide(g, Req(headers=bearer(clerk_token(org_role="member")))) == (403, "authorization-denied")
        assert called == []
        assert decide(g, Req(headers=bearer(clerk_token(user_id="user_ok", org_role="admin")))) == (200, None)
        assert called == ["user_ok"]


class TestRules:
    @staticmethod
    def session(issuer: LocalIssuer, **claims: Any) -> Session:
        with issuer.auth() as auth:
            return auth.verify(issuer.mint(**claims))

    def test_combinators(self, clerk_issuer: LocalIssuer) -> None:
        admin = self.session(clerk_issuer, org_role="admin", org_slug="acme")
        reader = self.session(clerk_issuer, org_role="member", permissions=["org:reports:read"])
        rule = any_of(has_role("admin"), has_permission("org:reports:read"))
        assert rule(admin, None) is True
        assert rule(reader, None) is True
        both = all_of(has_role("admin"), in_org("acme"))
        assert both(admin, None) is True
        assert both(reader, None) is False
        assert repr(both) == "all_of(has_role('admin'), in_org('acme'))"

    def test_truthy_members_do_not_count(self, clerk_issuer: LocalIssuer) -> None:
        s = self.session(clerk_issuer)
        assert any_of(lambda s, r: 1, lambda s, r: "yes")(s, None) is False
        assert all_of(lambda s, r: True, lambda s, r: 1)(s, None) is False

    def test_short_circuit(self, clerk_issuer: LocalIssuer) -> None:
        s = self.session(clerk_issuer)

        def boom(session: Session, request: Any) -> bool:
            raise AssertionError("must not be evaluated")

        assert any_of(lambda s, r: True, boom)(s, None) is True
        assert all_of(lambda s, r: False, boom)(s, None) is False

    def test_a_raising_member_propagates(self, clerk_issuer: LocalIssuer) -> None:
        def boom(session: Session, request: Any) -> bool:
            raise RuntimeError("bug")

        with pytest.raises(RuntimeError):
            any_of(lambda s, r: False, boom)(self.session(clerk_issuer), None)

    async def test_async_members_make_the_combination_awaitable(self, clerk_issuer: LocalIssuer) -> None:
        s = self.session(clerk_issuer, org_role="member")

        async def yes(session: Session, request: Any) -> bool:
            return True

        async def no(session: Session, request: Any) -> bool:
            return False

        combined = any_of(has_role("admin"), no, yes)
        result = combined(s, None)
        assert inspect.isawaitable(result)
        assert await result is True
        assert await all_of(has_role("member"), yes, no)(s, None) is False  # type: ignore[misc]
        assert await all_of(yes, has_role("member"))(s, None) is True  # type: ignore[misc]
        assert await any_of(no, has_role("admin"))(s, None) is False  # type: ignore[misc]

    def test_async_member_through_a_guard(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        async def weekend_shift(session: Session, request: Any) -> bool:
            return session.user_id == "user_weekend"

        g = guard(clerk_auth, authorize=any_of(has_role("admin"), weekend_shift))
        assert decide(g, Req(headers=bearer(clerk_token(user_id="user_weekend")))) == (200, None)
        assert decide(g, Req(headers=bearer(clerk_token(user_id="user_other")))) == (
            403,
            "authorization-denied",
        )

    def test_bad_combinations_fail_early(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            any_of()
        with pytest.raises(TypeError, match="callables"):
            all_of(has_role("admin"), "admin")  # type: ignore[arg-type]

    def test_rules_from_keywords(self) -> None:
        rules = rules_from(role="admin", permission="org:a:b", org="acme")
        assert [repr(r) for r in rules] == [
            "has_role('admin')",
            "has_permission('org:a:b')",
            "in_org('acme')",
        ]
        assert rules_from() == []


class TestWrappers:
    def test_kind_follows_the_handler(self, clerk_auth: ClerkAuth) -> None:
        require_auth = build_require_auth(DictAdapter(clerk_auth))

        def sync(request: Req) -> str:
            return "s"

        async def coro(request: Req) -> str:
            return "a"

        assert not inspect.iscoroutinefunction(require_auth(sync))
        assert inspect.iscoroutinefunction(require_auth(coro))

        class AsyncOnly(DictAdapter):
            async_only = True

        class SyncOnly(DictAdapter):
            sync_only = True

        assert inspect.iscoroutinefunction(build_require_auth(AsyncOnly(clerk_auth))(sync))
        assert not inspect.iscoroutinefunction(build_require_auth(SyncOnly(clerk_auth))(coro))

    async def test_wrappers_store_then_call_or_reject(self, clerk_auth: ClerkAuth, clerk_token: Mint) -> None:
        require_auth = build_require_auth(DictAdapter(clerk_auth))

        @require_auth(role="admin")
        async def handler(request: Req, item: int) -> tuple[str, int]:
            assert request.session is not None
            return request.session.user_id, item

        ok = Req(headers=bearer(clerk_token(user_id="user_w", org_role="admin")))
        assert await handler(ok, item=3) == ("user_w", 3)
        assert ok.stored
        denied = Req(headers=bearer(clerk_token(org_role="member")))
        assert await handler(denied, item=3) == ("rejected", 403, "authorization-denied")
        assert not denied.stored

    def test_misuse_is_a_type_error(self, clerk_auth: ClerkAuth) -> None:
        require_auth = build_require_auth(DictAdapter(clerk_auth))
        with pytest.raises(TypeError, match="not both"):
            require_auth(lambda request: None, role="admin")  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="decorates a handler"):
            require_auth(role="admin")("admin")  # type: ignore[type-var]
        with pytest.raises(ConfigurationError, match="one string"):
            require_auth(cookie_names="__session")
        with pytest.raises(ConfigurationError, match="ClerkAuth"):
            require_auth(auth="pk_test_xxx")  # type: ignore[arg-type]

    def test_no_auth_anywhere_is_a_configuration_error(self) -> None:
        g = build_require_auth(DictAdapter()).guard()
        with pytest.raises(ConfigurationError, match="no ClerkAuth"):
            g.check(Req(headers=bearer("x")))


class TestDecoratorOrderHelpers:
    def test_unguarded_views_and_guard_of(self, clerk_auth: ClerkAuth) -> None:
        require_auth = build_require_auth(DictAdapter(clerk_auth))
        registry: dict[str, Callable[..., Any]] = {}

        def route(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
            def register(fn: Callable[..., Any]) -> Callable[..., Any]:
                registry[name] = fn
                return fn

            return register

        @route("right")
        @require_auth
        def right(request: Req) -> None: ...

        @require_auth
        @route("wrong")
        def wrong(request: Req) -> None: ...

        @route("public")
        def public(request: Req) -> None: ...

        assert unguarded_views(registry) == ["wrong"]
        assert guard_of(registry["right"]) is not None
        assert guard_of(registry["public"]) is None

    def test_guard_of_survives_a_wrapped_cycle(self) -> None:
        def a() -> None: ...

        def b() -> None: ...

        a.__wrapped__ = b  # type: ignore[attr-defined]
        b.__wrapped__ = a  # type: ignore[attr-defined]
        assert guard_of(a) is None


def test_auth_from_config_prefers_config_over_env(clerk_issuer: LocalIssuer) -> None:
    other = LocalIssuer()
    env = {"CLERK_PUBLISHABLE_KEY": other.publishable_key, "CLERK_AUTHORIZED_PARTIES": "https://env.example"}
    config = {
        "CLERK_PUBLISHABLE_KEY": clerk_issuer.publishable_key,
        "CLERK_AUTHORIZED_PARTIES": ["https://a", "https://b"],
    }
    with auth_from_config(config, env) as auth:
        assert auth.issuer == clerk_issuer.issuer
        assert auth.authorized_parties == {"https://a", "https://b"}
    with auth_from_config({}, env) as auth:
        assert auth.issuer == other.issuer
        assert auth.authorized_parties == {"https://env.example"}
