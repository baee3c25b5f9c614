"""The shared request table: one list of requests, one expected answer each.

Every framework harness (see ``harness.py``) must answer every case exactly
as written here; ``test_table.py`` runs the whole table against each
registered harness. Header and cookie values are templates: ``{member}`` is
replaced with the token of that name from :func:`mint_tokens` (minted by a
:class:`~clerkguard.testing.LocalIssuer`), and a cookie *name*
``{suffixed_cookie}`` with Clerk's publishable-key-suffixed ``__session_xxxxxxxx``.

Cases with ``keys="down"`` run against a harness whose ``ClerkAuth`` points at
a dead loopback port with a cold key cache. Cases with ``backend="down"`` are
sent while the issuer's fake Backend API answers every verification with a
503 (see :func:`backend_outage`); the app's ``ClerkAuth`` verifies opaque
machine tokens against that fake (``table_auth``/``table_env``).

The machine-token section runs every kind of credential (JWT and opaque M2M
tokens, JWT and opaque OAuth access tokens, API keys) through ``/machine``
(machine kinds only), ``/any`` (every kind), ``/scoped`` (machine kinds with
the ``orders:read`` scope) and the session-only ``/protected``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from clerkguard import ClerkAuth
from clerkguard.adapters import client_uat_names_for, cookie_names_for
from clerkguard.testing import LocalIssuer, b64url

from .harness import ALLOWED_USER, PERMISSION

__all__ = ["ADMIN_USER", "CASES", "MEMBER_USER", "Case", "backend_outage", "mint_tokens"]

MEMBER_USER = "user_member"
ADMIN_USER = "user_admin"
PERM_USER = "user_with_permission"
#: The oversized token: 9000 characters, more than the 8 KiB limit.
OVERSIZED = "a" * 3000 + "." + "b" * 3000 + "." + "c" * 2998

#: The origin every table app trusts (the harness's ``ClerkAuth`` has it in ``authorized_parties``).
TRUSTED_ORIGIN = "http://localhost:3000"
EVIL_ORIGIN = "https://evil.example"
#: What a browser sends with a cross-site form POST or websocket handshake.
CROSS_SITE = {"Origin": EVIL_ORIGIN, "Sec-Fetch-Site": "cross-site"}

NO_ERROR = "Bearer"
INVALID = 'Bearer error="invalid_token"'
SCOPE = 'Bearer error="insufficient_scope"'


@dataclass(frozen=True)
class Case:
    """One request and the answer every framework must give.

    Attributes:
        name: Test id.
        method: HTTP method.
        path: One of the routes documented in ``harness.py``.
        status: Expected status.
        reason: Expected ``reason`` of the JSON error body (``None`` on success).
        www_authenticate: A substring the ``WWW-Authenticate`` header must
            contain (``None``: the header must be absent).
        headers: Request headers (values are templates, see module doc).
        cookies: Request cookies (names and values are templates).
        json: Keys the JSON success body must have, with these values.
        keys: ``"up"`` (live local issuer) or ``"down"`` (dead port, cold cache).
        repeated: Extra header lines sent after ``headers`` (a name may repeat).
        expect_headers: Response headers that must contain these substrings.
        backend: ``"up"``, or ``"down"``: sent while the fake Backend API
            answers 503 (:func:`backend_outage`).
    """

    name: str
    method: str
    path: str
    status: int
    reason: str | None = None
    www_authenticate: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    keys: Literal["up", "down"] = "up"
    repeated: tuple[tuple[str, str], ...] = ()
    expect_headers: Mapping[str, str] = field(default_factory=dict)
    backend: Literal["up", "down"] = "up"

    @property
    def token_sent(self) -> bool:
        """Whether the request carries something the guard treats as a token."""
        return self.reason not in (None, "token-missing")

    def render(self, tokens: Mapping[str, str]) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """Header lines and cookies with every ``{name}`` replaced from ``tokens``."""
        lines = [*self.headers.items(), *self.repeated]
        headers = [(k, v.format_map(tokens)) for k, v in lines]
        cookies = {k.format_map(tokens): v.format_map(tokens) for k, v in self.cookies.items()}
        return headers, cookies

    def __str__(self) -> str:
        return self.name


@contextmanager
def backend_outage(issuer: LocalIssuer) -> Iterator[None]:
    """The issuer's fake Backend API answers 503 meanwhile (its JWKS keeps working)."""
    issuer.set_backend_fault(status=503)
    try:
        yield
    finally:
        issuer.set_backend_fault()


#: Who each machine credential of the table acts for (one subject per kind and format,
#: so an answer shows which credential reached the handler).
M2M_JWT_MACHINE = "mch_table_jwt"
M2M_OPAQUE_MACHINE = "mch_table_opaque"
OAUTH_JWT_USER = "user_oauth_jwt"
OAUTH_OPAQUE_USER = "user_oauth_opaque"
API_KEY_ORG = "org_table_keys"
#: The scope ``/scoped`` requires.
SCOPE_NAME = "orders:read"
MACHINE_TOKEN_KINDS: list[tuple[str, str, str]] = [
    # (template name, token_type, subject)
    ("m2m_jwt", "m2m_token", M2M_JWT_MACHINE),
    ("oauth_jwt", "oauth_token", OAUTH_JWT_USER),
    ("m2m_opaque", "m2m_token", M2M_OPAQUE_MACHINE),
    ("oauth_opaque", "oauth_token", OAUTH_OPAQUE_USER),
    ("api_key", "api_key", API_KEY_ORG),
]
OPAQUE_KINDS = ("m2m_opaque", "oauth_opaque", "api_key")


def _machine_tokens(issuer: LocalIssuer, long: int) -> dict[str, str]:
    """Every machine credential the table names, with and without ``orders:read``.

    ``<kind>`` and ``<kind>_noscope`` of each kind, ``<kind>_expired``, and
    ``<opaque kind>_revoked`` / ``_outage`` (the latter sent only while the
    fake Backend API is down, so it is never cached). ``<jwt kind>_outage``
    is a JWT sent during the outage: verified locally, no Backend API call.
    """
    now = int(issuer.clock())
    minters = {
        "m2m_jwt": lambda scopes, **kw: issuer.mint_m2m(machine_id=M2M_JWT_MACHINE, scopes=scopes, **kw),
        "oauth_jwt": lambda scopes, **kw: issuer.mint_oauth(user_id=OAUTH_JWT_USER, scopes=scopes, **kw),
        "m2m_opaque": lambda scopes, **kw: issuer.issue_m2m_token(
            machine_id=M2M_OPAQUE_MACHINE, scopes=scopes, **kw
        ),
        "oauth_opaque": lambda scopes, **kw: issuer.issue_oauth_token(
            user_id=OAUTH_OPAQUE_USER, scopes=scopes, **kw
        ),
        "api_key": lambda scopes, **kw: issuer.issue_api_key(subject=API_KEY_ORG, scopes=scopes, **kw),
    }
    tokens: dict[str, str] = {}
    for name, mint in minters.items():
        tokens[name] = mint([SCOPE_NAME], expires_in=long)
        tokens[f"{name}_noscope"] = mint(["orders:write"], expires_in=long)
        tokens[f"{name}_outage"] = mint([SCOPE_NAME], expires_in=long)
        if name in OPAQUE_KINDS:
            tokens[f"{name}_expired"] = mint([SCOPE_NAME], expires_in=-60)
            tokens[f"{name}_revoked"] = mint([SCOPE_NAME], expires_in=long)
            issuer.revoke(tokens[f"{name}_revoked"], reason="table")
        else:  # issued an hour ago, expired ten minutes ago
            tokens[f"{name}_expired"] = mint([SCOPE_NAME], iat=now - 3600, nbf=now - 3600, exp=now - 600)
    tokens["unknown_api_key"] = "ak_" + b64url(secrets.token_bytes(24))  # never issued: 404
    return tokens


def mint_tokens(issuer: LocalIssuer, auth: ClerkAuth) -> dict[str, str]:
    """The tokens (and the suffixed cookie name) the table's templates name."""
    long = 3600  # the whole run fits in one token lifetime
    now = int(issuer.clock()) - 10  # one iat for all, so one __client_uat fits every cookie token
    other = LocalIssuer(kid=issuer.kid)  # same kid, different key: a forgery
    return _machine_tokens(issuer, long) | {
        "member": issuer.mint(user_id=MEMBER_USER, org_role="member", expires_in=long, issued_at=now),
        "admin": issuer.mint(user_id=ADMIN_USER, org_role="admin", expires_in=long, issued_at=now),
        "allowed": issuer.mint(user_id=ALLOWED_USER, expires_in=long, issued_at=now),
        "perm": issuer.mint(
            user_id=PERM_USER,
            org_role="analyst",
            permissions=[PERMISSION],
            expires_in=long,
            issued_at=now,
        ),
        "expired": issuer.mint(issued_at=issuer.clock() - 3600, expires_in=60),
        "forged": other.mint(user_id=ADMIN_USER, org_role="admin", expires_in=long),
        "wrong_issuer": issuer.mint(iss="https://evil.example.com", expires_in=long),
        "unknown_kid": issuer.mint(header={"kid": "ins_unknown"}, expires_in=long),
        "alg_none": issuer.mint(header={"alg": "none"}, expires_in=long),
        "oversized": OVERSIZED,
        "suffixed_cookie": cookie_names_for(auth)[0],
        "suffixed_uat": client_uat_names_for(auth)[0],
        "uat": str(now),  # __client_uat equal to the tokens' iat: accepted
        "uat_later": str(now + 600),  # a sign-in change after the token was issued
        "trusted_origin": TRUSTED_ORIGIN,
    }


def _cookie(token: str, uat: str | None = "{uat}") -> dict[str, str]:
    """A browser's Clerk cookies: ``__session`` and (unless ``None``) ``__client_uat``."""
    return {"__session": f"{{{token}}}"} | ({} if uat is None else {"__client_uat": uat})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {{{token}}}"}


CASES: list[Case] = [
    # -- token sources ---------------------------------------------------------------
    Case("no-token", "GET", "/protected", 401, "token-missing", NO_ERROR),
    Case(
        "bearer-ok",
        "GET",
        "/protected",
        200,
        headers=_bearer("member"),
        json={"user_id": MEMBER_USER, "org_role": "org:member"},
    ),
    Case(
        "bearer-scheme-case-insensitive",
        "GET",
        "/protected",
        200,
        headers={"Authorization": "bEaReR {member}"},
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "session-cookie-ok",
        "GET",
        "/protected",
        200,
        cookies=_cookie("admin"),
        json={"user_id": ADMIN_USER, "org_role": "org:admin"},
    ),
    Case(
        "suffixed-cookie-ok",
        "GET",
        "/protected",
        200,
        cookies={"{suffixed_cookie}": "{member}", "{suffixed_uat}": "{uat}", "__client_uat": "0"},
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "basic-header-ignored-cookie-used",
        "GET",
        "/protected",
        200,
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
        cookies=_cookie("member"),
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "basic-header-alone-is-no-token",
        "GET",
        "/protected",
        401,
        "token-missing",
        NO_ERROR,
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    ),
    Case(
        "bad-bearer-wins-over-good-cookie",
        "GET",
        "/protected",
        401,
        "token-malformed",
        INVALID,
        headers={"Authorization": "Bearer not-a-jwt"},
        cookies=_cookie("member"),
    ),
    Case(
        "good-bearer-wins-over-bad-cookie",
        "GET",
        "/protected",
        200,
        headers=_bearer("admin"),
        cookies=_cookie("forged"),
        json={"user_id": ADMIN_USER},
    ),
    Case(
        "empty-bearer-is-malformed",
        "GET",
        "/protected",
        401,
        "token-malformed",
        INVALID,
        headers={"Authorization": "Bearer"},
        cookies=_cookie("member"),
    ),
    Case(
        "bad-cookie",
        "GET",
        "/protected",
        401,
        "token-invalid-signature",
        INVALID,
        cookies=_cookie("forged"),
    ),
    # -- bad tokens ------------------------------------------------------------------
    Case("expired", "GET", "/protected", 401, "token-expired", INVALID, headers=_bearer("expired")),
    Case("forged", "GET", "/protected", 401, "token-invalid-signature", INVALID, headers=_bearer("forged")),
    Case(
        "wrong-issuer",
        "GET",
        "/protected",
        401,
        "token-invalid-issuer",
        INVALID,
        headers=_bearer("wrong_issuer"),
    ),
    Case(
        "unknown-kid", "GET", "/protected", 401, "jwk-kid-mismatch", INVALID, headers=_bearer("unknown_kid")
    ),
    Case(
        "alg-none", "GET", "/protected", 401, "token-invalid-algorithm", INVALID, headers=_bearer("alg_none")
    ),
    Case(
        "garbage",
        "GET",
        "/protected",
        401,
        "token-malformed",
        INVALID,
        headers={"Authorization": "Bearer a.b"},
    ),
    Case("oversized", "GET", "/protected", 401, "token-too-large", INVALID, headers=_bearer("oversized")),
    Case(
        "oversized-cookie",
        "GET",
        "/protected",
        401,
        "token-too-large",
        INVALID,
        cookies=_cookie("oversized"),
    ),
    # -- rules and authorize ------------------------------------------------------------
    Case("admin-role-ok", "GET", "/admin", 200, headers=_bearer("admin"), json={"user_id": ADMIN_USER}),
    Case("admin-role-denied", "GET", "/admin", 403, "authorization-denied", SCOPE, headers=_bearer("member")),
    Case("admin-no-token", "GET", "/admin", 401, "token-missing", NO_ERROR),
    Case("admin-bad-token", "GET", "/admin", 401, "token-expired", INVALID, headers=_bearer("expired")),
    Case("permission-ok", "GET", "/perm", 200, headers=_bearer("perm"), json={"user_id": PERM_USER}),
    Case("permission-denied", "GET", "/perm", 403, "authorization-denied", SCOPE, headers=_bearer("admin")),
    Case(
        "async-authorize-ok",
        "GET",
        "/async-authorize",
        200,
        headers=_bearer("allowed"),
        json={"user_id": ALLOWED_USER},
    ),
    Case(
        "async-authorize-denied",
        "GET",
        "/async-authorize",
        403,
        "authorization-denied",
        SCOPE,
        headers=_bearer("admin"),
    ),
    Case(
        "authorize-raises-is-403",
        "GET",
        "/authorize-raises",
        403,
        "authorization-error",
        SCOPE,
        headers=_bearer("admin"),
    ),
    Case(
        "authorize-truthy-is-not-true",
        "GET",
        "/truthy",
        403,
        "authorization-denied",
        SCOPE,
        headers=_bearer("admin"),
    ),
    Case(
        "authorize-gets-framework-request",
        "GET",
        "/request-arg",
        200,
        headers=_bearer("member"),
        json={"user_id": MEMBER_USER},
    ),
    # -- optional --------------------------------------------------------------------------
    Case("optional-anonymous", "GET", "/optional", 200, json={"user_id": None}),
    Case(
        "optional-signed-in",
        "GET",
        "/optional",
        200,
        headers=_bearer("member"),
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "optional-bad-token-still-401",
        "GET",
        "/optional",
        401,
        "token-expired",
        INVALID,
        headers=_bearer("expired"),
    ),
    # -- OPTIONS (CORS preflight) -------------------------------------------------------------
    # The guard answers OPTIONS with the framework's default (204 + Allow); the
    # handler's own OPTIONS branch (which would answer {"handler": "ran"}) never runs.
    Case(
        "options-answered-without-the-handler-bad-token",
        "OPTIONS",
        "/preflight",
        204,
        headers=_bearer("forged"),
        expect_headers={"allow": "GET"},
    ),
    Case(
        "options-answered-without-the-handler", "OPTIONS", "/preflight", 204, expect_headers={"allow": "GET"}
    ),
    Case(
        "options-answered-without-the-handler-good-token",
        "OPTIONS",
        "/preflight",
        204,
        headers=_bearer("member"),
        expect_headers={"allow": "OPTIONS"},
    ),
    Case("preflight-get-still-guarded", "GET", "/preflight", 401, "token-missing", NO_ERROR),
    Case(
        "preflight-get-ok", "GET", "/preflight", 200, headers=_bearer("member"), json={"user_id": MEMBER_USER}
    ),
    # -- handler kinds ------------------------------------------------------------------------
    Case(
        "sync-ok",
        "GET",
        "/sync",
        200,
        headers=_bearer("member"),
        json={"user_id": MEMBER_USER, "kind": "sync"},
    ),
    Case("sync-no-token", "GET", "/sync", 401, "token-missing", NO_ERROR),
    Case(
        "async-ok",
        "GET",
        "/async",
        200,
        headers=_bearer("member"),
        json={"user_id": MEMBER_USER, "kind": "async"},
    ),
    Case(
        "async-bad-token", "GET", "/async", 401, "token-invalid-signature", INVALID, headers=_bearer("forged")
    ),
    # -- Authorization header edge cases ------------------------------------------------------
    Case(
        "bearer-tab-is-still-bearer",
        "GET",
        "/protected",
        401,
        "token-malformed",
        INVALID,
        headers={"Authorization": "Bearer\tgarbage"},
        cookies=_cookie("member"),
    ),
    Case(
        "bearer-tab-valid-token",
        "GET",
        "/protected",
        200,
        headers={"Authorization": "Bearer\t{member}"},
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "two-authorization-headers",
        "GET",
        "/protected",
        401,
        "token-ambiguous",
        INVALID,
        headers=_bearer("member"),
        repeated=(("Authorization", "Bearer {admin}"),),
    ),
    Case(
        "two-identical-authorization-headers",
        "GET",
        "/protected",
        401,
        "token-ambiguous",
        INVALID,
        headers=_bearer("member"),
        repeated=(("Authorization", "Bearer {member}"),),
    ),
    Case(
        "token-scheme-is-no-bearer",
        "GET",
        "/protected",
        401,
        "token-missing",
        NO_ERROR,
        headers={"Authorization": "Token {member}"},
    ),
    # -- cookies: one parser, Clerk's __client_uat rule --------------------------------------
    Case(
        "two-different-session-cookies",
        "GET",
        "/protected",
        401,
        "token-ambiguous",
        INVALID,
        headers={"Cookie": "__session={member}; __session={admin}; __client_uat={uat}"},
    ),
    Case(
        "two-identical-session-cookies",
        "GET",
        "/protected",
        200,
        headers={"Cookie": "__session={member}; __client_uat={uat}; __session={member}"},
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "cookie-without-client-uat",
        "GET",
        "/protected",
        401,
        "session-token-without-client-uat",
        INVALID,
        cookies=_cookie("member", uat=None),
    ),
    Case(
        "cookie-client-uat-zero",
        "GET",
        "/protected",
        401,
        "session-token-without-client-uat",
        INVALID,
        cookies=_cookie("member", uat="0"),
    ),
    Case(
        "cookie-client-uat-garbage",
        "GET",
        "/protected",
        401,
        "session-token-without-client-uat",
        INVALID,
        cookies=_cookie("member", uat="12ab"),
    ),
    Case(
        "cookie-older-than-client-uat",
        "GET",
        "/protected",
        401,
        "session-token-iat-before-client-uat",
        INVALID,
        cookies=_cookie("member", uat="{uat_later}"),
    ),
    Case(
        "bearer-needs-no-client-uat",
        "GET",
        "/protected",
        200,
        headers=_bearer("member"),
        cookies={"__client_uat": "{uat_later}"},
        json={"user_id": MEMBER_USER},
    ),
    # -- cookies on unsafe methods: the origin check ------------------------------------------
    Case(
        "cross-site-cookie-post",
        "POST",
        "/write",
        403,
        "cross-site-request",
        SCOPE,
        headers=CROSS_SITE,
        cookies=_cookie("member"),
    ),
    Case(
        "same-site-sibling-cookie-post",
        "POST",
        "/write",
        403,
        "cross-site-request",
        SCOPE,
        headers={"Origin": "https://evil.localhost", "Sec-Fetch-Site": "same-site"},
        cookies=_cookie("member"),
    ),
    Case(
        "null-origin-cookie-post",
        "POST",
        "/write",
        403,
        "cross-site-request",
        SCOPE,
        headers={"Origin": "null"},
        cookies=_cookie("member"),
    ),
    Case(
        "cross-site-cookie-post-bad-token-is-401",
        "POST",
        "/write",
        401,
        "token-invalid-signature",
        INVALID,
        headers=CROSS_SITE,
        cookies=_cookie("forged"),
    ),
    Case(
        "same-origin-cookie-post",
        "POST",
        "/write",
        200,
        headers={"Origin": EVIL_ORIGIN, "Sec-Fetch-Site": "same-origin"},
        cookies=_cookie("member"),
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "trusted-origin-cookie-post",
        "POST",
        "/write",
        200,
        headers={"Origin": "{trusted_origin}", "Sec-Fetch-Site": "cross-site"},
        cookies=_cookie("member"),
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "non-browser-cookie-post",
        "POST",
        "/write",
        200,
        cookies=_cookie("member"),
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "cross-site-bearer-post",
        "POST",
        "/write",
        200,
        headers={**CROSS_SITE, "Authorization": "Bearer {member}"},
        json={"user_id": MEMBER_USER},
    ),
    Case(
        "cross-site-cookie-get-is-safe",
        "GET",
        "/protected",
        200,
        headers=CROSS_SITE,
        cookies=_cookie("member"),
        json={"user_id": MEMBER_USER},
    ),
    # -- key outage on a cold cache -------------------------------------------------------------
    Case(
        "jwks-down-cold-is-503",
        "GET",
        "/protected",
        503,
        "jwks-unavailable",
        NO_ERROR,
        headers=_bearer("member"),
        keys="down",
    ),
    Case(
        "jwks-down-async-handler-is-503",
        "GET",
        "/async",
        503,
        "jwks-unavailable",
        NO_ERROR,
        headers=_bearer("member"),
        keys="down",
    ),
    Case(
        "jwks-down-bad-shape-is-still-401",
        "GET",
        "/protected",
        401,
        "token-malformed",
        INVALID,
        headers={"Authorization": "Bearer x.y"},
        keys="down",
    ),
]


def _who(kind: str, subject: str) -> dict[str, str]:
    return {"token_type": kind, "subject": subject}


def _machine_cases() -> list[Case]:
    """Each machine kind where it is accepted, where it is not, from the cookie, under an outage."""
    cases: list[Case] = []
    for name, kind, subject in MACHINE_TOKEN_KINDS:
        who = _who(kind, subject)
        cases += [
            Case(f"{name}-machine-route-ok", "GET", "/machine", 200, headers=_bearer(name), json=who),
            Case(f"{name}-any-route-ok", "GET", "/any", 200, headers=_bearer(name), json=who),
            Case(
                f"{name}-session-route-refused",
                "GET",
                "/protected",
                401,
                "token-type-not-accepted",
                INVALID,
                headers=_bearer(name),
            ),
            # Header only: a machine credential in Clerk's session cookie is no credential.
            Case(
                f"{name}-in-cookie-refused",
                "GET",
                "/any",
                401,
                "token-type-not-accepted",
                INVALID,
                cookies=_cookie(name),
            ),
            Case(
                f"{name}-in-cookie-machine-route-reads-no-cookie",
                "GET",
                "/machine",
                401,
                "token-missing",
                NO_ERROR,
                cookies=_cookie(name),
            ),
            Case(f"{name}-scope-ok", "GET", "/scoped", 200, headers=_bearer(name), json=who),
            Case(
                f"{name}-scope-missing",
                "GET",
                "/scoped",
                403,
                "authorization-denied",
                SCOPE,
                headers=_bearer(f"{name}_noscope"),
            ),
            Case(
                f"{name}-expired",
                "GET",
                "/machine",
                401,
                "token-expired",
                INVALID,
                headers=_bearer(f"{name}_expired"),
            ),
        ]
        if name in OPAQUE_KINDS:
            cases += [
                Case(
                    f"{name}-revoked",
                    "GET",
                    "/machine",
                    401,
                    "token-revoked",
                    INVALID,
                    headers=_bearer(f"{name}_revoked"),
                ),
                Case(
                    f"{name}-backend-api-down-is-503",
                    "GET",
                    "/any",
                    503,
                    "backend-api-unavailable",
                    NO_ERROR,
                    headers=_bearer(f"{name}_outage"),
                    backend="down",
                    expect_headers={"retry-after": "1"},
                ),
            ]
        else:
            cases.append(
                Case(
                    f"{name}-backend-api-down-verified-locally",
                    "GET",
                    "/any",
                    200,
                    headers=_bearer(f"{name}_outage"),
                    backend="down",
                    json=who,
                )
            )
    session = _who("session_token", MEMBER_USER)
    return [
        *cases,
        Case("machine-route-no-token", "GET", "/machine", 401, "token-missing", NO_ERROR),
        Case(
            "session-on-machine-route-refused",
            "GET",
            "/machine",
            401,
            "token-type-not-accepted",
            INVALID,
            headers=_bearer("member"),
        ),
        Case(
            "session-cookie-on-machine-route-is-no-token",
            "GET",
            "/machine",
            401,
            "token-missing",
            NO_ERROR,
            cookies=_cookie("member"),
        ),
        Case(
            "session-on-scoped-route-refused",
            "GET",
            "/scoped",
            401,
            "token-type-not-accepted",
            INVALID,
            headers=_bearer("member"),
        ),
        Case("session-on-any-route-ok", "GET", "/any", 200, headers=_bearer("member"), json=session),
        Case("session-cookie-on-any-route-ok", "GET", "/any", 200, cookies=_cookie("member"), json=session),
        Case(
            "unknown-api-key",
            "GET",
            "/machine",
            401,
            "token-invalid",
            INVALID,
            headers=_bearer("unknown_api_key"),
        ),
        # A kind the route does not accept is refused before any Backend API call.
        Case(
            "opaque-on-session-route-refused-without-the-backend-api",
            "GET",
            "/protected",
            401,
            "token-type-not-accepted",
            INVALID,
            headers=_bearer("api_key_outage"),
            backend="down",
        ),
    ]


CASES += _machine_cases()
