"""Test tooling: a local Clerk-like issuer on loopback, token minting, fixtures.

[`LocalIssuer`][clerkguard.testing.LocalIssuer] generates an RSA key, serves its JWKS from a real HTTP
server on ``127.0.0.1`` (``/.well-known/jwks.json`` like Clerk's Frontend API
and ``/v1/jwks`` like the Backend API), and mints tokens shaped exactly like
Clerk's session tokens (header ``alg``/``cat``/``kid``/``typ``; v2 payload with
``o``/``fea``/``pla``, or the v1 variant). The server can be told to misbehave
([`LocalIssuer.set_fault`][clerkguard.testing.LocalIssuer.set_fault]) to test outage handling for real.

It also fakes the Backend API's machine-token endpoints
(``POST /v1/m2m_tokens/verify``, ``/v1/oauth_applications/access_tokens/verify``,
``/v1/api_keys/verify``, answering in Clerk's shapes) for the opaque tokens
it issues (`LocalIssuer.issue_m2m_token`, `issue_api_key`,
`issue_oauth_token`), and its user endpoints (``GET /v1/users/{id}``,
``GET /v1/users/{id}/organization_memberships``, ``GET /v1/organizations/{id}``)
for the users, organizations and memberships registered on it
(`LocalIssuer.add_user`, `LocalIssuer.add_organization`,
`LocalIssuer.add_membership`), with its own fault switch
(`LocalIssuer.set_backend_fault`); and it mints JWT-format M2M and
OAuth tokens (`LocalIssuer.mint_m2m`, `LocalIssuer.mint_oauth`).

Use it from pytest through the fixtures of [`clerkguard.pytest_plugin`][clerkguard.pytest_plugin]
(``clerk_issuer``, ``clerk_auth``, ``clerk_webhook_signer``), or directly:

    with LocalIssuer() as issuer:
        auth = issuer.auth()
        token = issuer.mint(user_id="user_123", org_role="admin")
        assert auth.verify(token).org_role == "org:admin"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry
from typing_extensions import Self

from ._backend import MAX_OPAQUE_TOKEN
from .auth import ClerkAuth
from .machine import OPAQUE_PREFIXES

__all__ = [
    "M2M_CATEGORY",
    "MISSING",
    "SESSION_CATEGORY",
    "BackendRequest",
    "Fault",
    "LocalIssuer",
    "WebhookSigner",
    "b64url",
    "cookie_header",
    "derive_secret",
    "session_cookies",
    "sign_webhook",
]

#: The ``cat`` header of Clerk session tokens.
SESSION_CATEGORY = "cl_B7d4PD111AAA"
#: The ``cat`` header of Clerk's JWT-format M2M tokens.
M2M_CATEGORY = "cl_B7d4PD333AAA"

#: Fake Backend API verify endpoints: path -> (kind, body member holding the token).
_VERIFY_ENDPOINTS = {
    "/v1/m2m_tokens/verify": ("m2m_token", "token"),
    "/v1/oauth_applications/access_tokens/verify": ("oauth_token", "access_token"),
    "/v1/api_keys/verify": ("api_key", "secret"),
}


#: Length of a self-contained opaque token's MAC (base64url of HMAC-SHA-256).
_MAC_CHARS = 43


def _with_status(record: Mapping[str, Any]) -> dict[str, Any]:
    """An issued record as the fake Backend API keeps it: not revoked, updated when created."""
    return {
        **record,
        "revoked": False,
        "revocation_reason": None,
        "expired": False,
        "updated_at": record["created_at"],
    }


def derive_secret(key: RSAKey, purpose: str) -> bytes:
    """32 bytes derived from the private ``key`` for one ``purpose`` (HMAC-SHA-256 over its ``d``).

    Two processes holding the same key file agree on them without sharing
    anything else; without the private key they cannot be computed.
    """
    private = key.as_dict(private=True).get("d")
    if not isinstance(private, str):
        raise ValueError("a secret can only be derived from a private key")
    return hmac.new(private.encode(), f"clerkguard.testing/{purpose}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class BackendRequest:
    """One request the fake Backend API received (for asserting the exact shape).

    Attributes:
        method: ``POST`` (verify endpoints) or ``GET`` (user endpoints).
        path: The request path (``/v1/api_keys/verify``).
        authorization: The ``Authorization`` header as sent (holds a secret key).
        content_type: The ``Content-Type`` header.
        body: The raw request body.
        query: The query string, without ``?`` (``limit=100&offset=0``).
    """

    method: str
    path: str
    authorization: str | None
    content_type: str | None
    body: bytes
    query: str = ""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Pass as a claim or header value to [`LocalIssuer.mint`][clerkguard.testing.LocalIssuer.mint] to remove it.
MISSING: Any = _Missing()


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Fault:
    """How the JWKS endpoint misbehaves (see
    [`LocalIssuer.set_fault`][clerkguard.testing.LocalIssuer.set_fault]).

    Attributes:
        status: Answer with this HTTP status instead of 200.
        delay: Sleep this many seconds before answering.
        drip: Send the body one byte per ``drip`` seconds.
        body: Send these bytes as the body instead of the JWKS.
        redirect: Answer 302 with this ``Location``.
        close: Close the connection without answering.
        headers: Extra response headers, e.g. ``{"Content-Encoding": "gzip"}``
            to serve a compressed (or decompression-bomb) ``body``.
        drip_headers: With ``drip``, drip the status line and headers too
            (a client whose timeout applies per read would wait forever).
        endless: Stream the body forever (no ``Content-Length``) until the
            client hangs up: only a client that stops reading gets out.
    """

    status: int = 200
    delay: float = 0.0
    drip: float = 0.0
    body: bytes | None = None
    redirect: str | None = None
    close: bool = False
    headers: Mapping[str, str] | None = None
    drip_headers: bool = False
    endless: bool = False


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-answer (timeouts, size caps) are expected: no tracebacks."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalIssuer:
    """A stand-in for a Clerk instance: signing key, JWKS server and minting.

    Args:
        kid: Key id (Clerk uses the instance id, ``ins_...``).
        key_bits: RSA modulus size.
        azp: Default ``azp`` claim (the frontend origin).
        clock: ``() -> Unix seconds`` used for ``iat``/``nbf``/``exp``.
        secret_key: The secret the ``/v1/jwks`` endpoint expects as Bearer token.
        host: Interface to listen on (loopback only).
        port: Port; 0 picks a free one.
    """

    def __init__(
        self,
        *,
        kid: str | None = None,
        key_bits: int = 2048,
        azp: str = "http://localhost:3000",
        clock: Callable[[], float] | None = None,
        secret_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.kid = kid or "ins_" + b64url(secrets.token_bytes(20))[:27]
        self.key_bits = key_bits
        self.key: RSAKey = RSAKey.generate_key(key_bits, private=True)
        #: Extra keys published in the JWKS (e.g. the previous key after rotation).
        self.extra_keys: list[tuple[str, RSAKey]] = []
        self.azp = azp
        self.clock = clock or time.time
        self.secret_key = secret_key or "sk_test_" + b64url(secrets.token_bytes(24))
        #: The machine secret key the fake Backend API accepts for M2M verification.
        self.machine_secret_key = "ak_" + b64url(secrets.token_bytes(24))
        #: How the fake Backend API misbehaves (see `set_backend_fault`).
        self.backend_fault = Fault()
        #: Every request the fake Backend API received, in order.
        self.backend_requests: list[BackendRequest] = []
        # opaque token -> its record (Clerk's JSON shape), for the fake verify endpoints
        self._machine_tokens: dict[str, dict[str, Any]] = {}
        self._seal_cache: tuple[RSAKey, bytes] | None = None
        #: user id -> the user object the fake ``GET /v1/users/{id}`` serves (see `add_user`).
        self.users: dict[str, dict[str, Any]] = {}
        #: user id -> the memberships the fake membership list serves (see `add_membership`).
        self.memberships: dict[str, list[dict[str, Any]]] = {}
        #: organization id -> the organization ``GET /v1/organizations/{id or slug}`` serves.
        self.organizations: dict[str, dict[str, Any]] = {}
        self.host = host
        self.port = port
        self.fault = Fault()
        self.jwks_override: Mapping[str, Any] | None = None
        #: Number of JWKS requests served (for asserting fetch counts).
        self.request_count = 0
        self._count_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- server ----------------------------------------------------------------
    def start(self) -> Self:
        """Start serving the JWKS on loopback (idempotent)."""
        if self._server is not None:
            return self
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                pass

            def do_GET(self) -> None:
                if self.path.startswith(("/v1/users/", "/v1/organizations/")):
                    issuer._serve_users(self)
                else:
                    issuer._serve(self)

            def do_POST(self) -> None:
                issuer._serve_backend(self)

        self._server = _QuietServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="clerkguard-local-issuer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_fault(self, fault: Fault | None = None, **kwargs: Any) -> None:
        """Make the JWKS endpoint misbehave; ``set_fault()`` restores it."""
        self.fault = fault if fault is not None else Fault(**kwargs)

    def set_backend_fault(self, fault: Fault | None = None, **kwargs: Any) -> None:
        """Make the fake Backend API endpoints misbehave; ``set_backend_fault()`` restores them."""
        self.backend_fault = fault if fault is not None else Fault(**kwargs)

    # -- the fake Backend API (opaque machine tokens) -----------------------------------
    def _issue(
        self, prefix: str, record: dict[str, Any], expires_in: float | None, self_contained: bool
    ) -> str:
        now_ms = int(self.clock() * 1000)
        issued = {
            **record,
            "id": prefix + b64url(secrets.token_bytes(15)),
            "expiration": None if expires_in is None else now_ms + int(expires_in * 1000),
            "created_at": now_ms,
        }
        if self_contained:
            token = self._seal(prefix, issued)
        else:
            token = prefix + b64url(secrets.token_bytes(24))
        self._machine_tokens[token] = _with_status(issued)
        return token

    # Self-contained tokens: ``prefix + base64url(zlib(record JSON)) + base64url(HMAC-SHA-256)``,
    # the MAC keyed by a secret derived from the private signing key. Whoever holds the key
    # (the dev issuer's 0600 key file) can mint them, exactly as for JWTs; nothing is stored,
    # so a dev issuer in another process accepts them, and keeps accepting them after a restart.
    def _seal_key(self) -> bytes:
        cached = self._seal_cache
        if cached is None or cached[0] is not self.key:
            cached = (self.key, derive_secret(self.key, "self-contained opaque tokens"))
            self._seal_cache = cached
        return cached[1]

    def _mac(self, prefix: str, body: str) -> str:
        return b64url(hmac.new(self._seal_key(), (prefix + body).encode(), hashlib.sha256).digest())

    def _seal(self, prefix: str, record: Mapping[str, Any]) -> str:
        packed = zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 9)
        body = b64url(packed)
        token = prefix + body + self._mac(prefix, body)
        if len(token) > MAX_OPAQUE_TOKEN:
            raise ValueError(
                f"a self-contained token holds at most {MAX_OPAQUE_TOKEN} characters and this one "
                f"needs {len(token)}: use fewer or shorter scopes and claims"
            )
        return token

    def _unseal(self, token: object) -> dict[str, Any] | None:
        """The record a self-contained token carries, or ``None`` (not one, or not sealed here)."""
        if not isinstance(token, str) or not token.isascii() or len(token) > MAX_OPAQUE_TOKEN:
            return None
        prefix = next((p for p in OPAQUE_PREFIXES if token.startswith(p)), None)
        if prefix is None or len(token) <= len(prefix) + _MAC_CHARS:
            return None
        body, mac = token[len(prefix) : -_MAC_CHARS], token[-_MAC_CHARS:]
        if not hmac.compare_digest(mac, self._mac(prefix, body)):
            return None
        try:  # sealed here, so well-formed; still bounded
            packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            record = json.loads(zlib.decompressobj().decompress(packed, 64 * 1024))
        except (ValueError, zlib.error):
            return None
        return _with_status(record) if isinstance(record, dict) else None

    def issue_m2m_token(
        self,
        *,
        machine_id: str = "mch_2exampleservicea00000000",
        scopes: Iterable[str] = (),
        claims: Mapping[str, Any] | None = None,
        expires_in: float | None = 3600,
        self_contained: bool = False,
    ) -> str:
        """An opaque M2M token (``mt_...``) the fake Backend API knows.

        ``self_contained=True`` makes a token that carries its record, sealed
        with a key derived from this issuer's private key: any `LocalIssuer`
        with the same key accepts it without having issued it (this is how
        ``clerkguard mint --kind m2m --opaque`` makes tokens for a running
        ``clerkguard dev-issuer``). It is longer than Clerk's (at most 512
        characters), and `revoke` only reaches the issuer that made it.
        """
        record: dict[str, Any] = {"object": "machine_to_machine_token", "subject": machine_id}
        record["scopes"] = list(scopes)
        record["claims"] = dict(claims) if claims else None
        return self._issue("mt_", record, expires_in, self_contained)

    def issue_api_key(
        self,
        *,
        subject: str = "user_2abcdefghijklmnopqrstuvwxyz",
        name: str = "test key",
        scopes: Iterable[str] = (),
        claims: Mapping[str, Any] | None = None,
        expires_in: float | None = None,
        self_contained: bool = False,
    ) -> str:
        """An API key (``ak_...``) of a user or an organization (``subject``).

        ``self_contained``: as for `issue_m2m_token`.
        """
        record = {
            "object": "api_key",
            "type": "api_key",
            "name": name,
            "subject": subject,
            "scopes": list(scopes),
            "claims": dict(claims) if claims else None,
            "created_by": None,
            "description": None,
            "last_used_at": None,
        }
        return self._issue("ak_", record, expires_in, self_contained)

    def issue_oauth_token(
        self,
        *,
        user_id: str = "user_2abcdefghijklmnopqrstuvwxyz",
        client_id: str = "client_2exampleoauthapp0000000",
        scopes: Iterable[str] = (),
        expires_in: float | None = 3600,
        self_contained: bool = False,
    ) -> str:
        """An opaque OAuth access token (``oat_...``) issued to ``client_id`` for ``user_id``.

        ``self_contained``: as for `issue_m2m_token`.
        """
        record = {
            "object": "clerk_idp_oauth_access_token",
            "client_id": client_id,
            "type": "oauth:access_token",
            "subject": user_id,
            "scopes": list(scopes),
        }
        return self._issue("oat_", record, expires_in, self_contained)

    def revoke(self, token: str, reason: str | None = None) -> None:
        """Revoke an opaque token issued here (the fake then answers ``revoked: true``)."""
        self._machine_tokens[token].update(revoked=True, revocation_reason=reason)

    def _serve_backend(self, handler: BaseHTTPRequestHandler) -> None:
        length = handler.headers.get("Content-Length", "0")
        body = handler.rfile.read(int(length)) if length.isdigit() else b""
        path = handler.path.split("?", 1)[0]
        authorization = handler.headers.get("Authorization")
        with self._count_lock:
            self.backend_requests.append(
                BackendRequest("POST", path, authorization, handler.headers.get("Content-Type"), body)
            )
        endpoint = _VERIFY_ENDPOINTS.get(path)
        if endpoint is None:
            self._answer(handler, 404, b'{"errors":[{"code":"resource_not_found"}]}')
            return
        kind, member = endpoint
        allowed = {f"Bearer {self.secret_key}"}
        if kind == "m2m_token":
            allowed.add(f"Bearer {self.machine_secret_key}")
        if authorization not in allowed:
            self._answer(handler, 401, b'{"errors":[{"code":"authentication_invalid"}]}')
            return
        fault = self.backend_fault
        if self._backend_misbehaves(handler, fault):
            return
        try:
            token = json.loads(body)[member]
            record = self._machine_tokens.get(token) or self._unseal(token)
        except (ValueError, KeyError, TypeError):
            record = None
        if record is None:
            self._answer(handler, 404, b'{"errors":[{"code":"resource_not_found","message":"not found"}]}')
            return
        expiration = record["expiration"]
        answer = {**record, "expired": expiration is not None and expiration <= self.clock() * 1000}
        if kind == "m2m_token":
            answer["token"] = token  # as Clerk's answer does
        self._answer(handler, 200, json.dumps(answer).encode(), drip=fault.drip, headers=fault.headers)

    def _backend_misbehaves(self, handler: BaseHTTPRequestHandler, fault: Fault) -> bool:
        """Answer as `backend_fault` says, if it says anything (True: answered)."""
        if fault.delay:
            time.sleep(fault.delay)
        if fault.close:
            handler.close_connection = True
            handler.connection.close()
            return True
        if fault.redirect is not None:
            handler.send_response(307)
            handler.send_header("Location", fault.redirect)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return True
        if fault.endless:
            self._answer_endlessly(handler, fault.status, fault.headers or {})
            return True
        if fault.body is not None or fault.status != 200:
            error = fault.body if fault.body is not None else b'{"errors":[{"code":"internal"}]}'
            self._answer(handler, fault.status, error, drip=fault.drip, headers=fault.headers)
            return True
        return False

    # -- the fake Backend API (users and organization memberships) -----------------------
    def add_user(
        self,
        user_id: str = "user_2abcdefghijklmnopqrstuvwxyz",
        *,
        first_name: str | None = "Ada",
        last_name: str | None = "Lovelace",
        email: str | None = "ada@example.com",
        username: str | None = None,
        public_metadata: Mapping[str, Any] | None = None,
        private_metadata: Mapping[str, Any] | None = None,
        external_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Register a user the fake ``GET /v1/users/{id}`` serves, in Clerk's shape; returns it.

        ``extra`` sets (or, with `MISSING`, removes) any other member of the answer.
        """
        now_ms = int(self.clock() * 1000)
        email_id = "idn_" + b64url(secrets.token_bytes(15))
        user: dict[str, Any] = {
            "id": user_id,
            "object": "user",
            "external_id": external_id,
            "primary_email_address_id": email_id if email is not None else None,
            "primary_phone_number_id": None,
            "primary_web3_wallet_id": None,
            "username": username,
            "first_name": first_name,
            "last_name": last_name,
            "image_url": "https://img.clerk.com/" + b64url(secrets.token_bytes(12)),
            "has_image": False,
            "public_metadata": dict(public_metadata or {}),
            "private_metadata": dict(private_metadata or {}),
            "unsafe_metadata": {},
            "email_addresses": (
                []
                if email is None
                else [
                    {
                        "id": email_id,
                        "object": "email_address",
                        "email_address": email,
                        "reserved": False,
                        "verification": {"status": "verified", "strategy": "email_code", "attempts": 1},
                        "linked_to": [],
                        "created_at": now_ms,
                        "updated_at": now_ms,
                    }
                ]
            ),
            "phone_numbers": [],
            "web3_wallets": [],
            "passkeys": [],
            "password_enabled": True,
            "two_factor_enabled": False,
            "totp_enabled": False,
            "backup_code_enabled": False,
            "external_accounts": [],
            "saml_accounts": [],
            "enterprise_accounts": [],
            "last_sign_in_at": now_ms,
            "banned": False,
            "locked": False,
            "lockout_expires_in_seconds": None,
            "verification_attempts_remaining": 100,
            "created_at": now_ms,
            "updated_at": now_ms,
            "delete_self_enabled": True,
            "create_organization_enabled": True,
            "last_active_at": now_ms,
            "mfa_enabled_at": None,
            "mfa_disabled_at": None,
            "legal_accepted_at": None,
        }
        for name, value in extra.items():
            if value is MISSING:
                user.pop(name, None)
            else:
                user[name] = value
        self.users[user_id] = user
        return user

    def add_membership(
        self,
        user_id: str,
        org_id: str = "org_2exampleorganizationid00",
        *,
        slug: str = "acme",
        role: str = "org:member",
        name: str | None = None,
    ) -> dict[str, Any]:
        """Make ``user_id`` a member of an organization (the fake membership list); returns the membership.

        ``user_id`` need not be registered with `add_user`: like Clerk's, the
        list of a user with no membership is empty, not a 404. The
        organization is registered too (`add_organization`) unless it is already.
        """
        now_ms = int(self.clock() * 1000)
        organization = self.organizations.get(org_id) or self.add_organization(
            org_id, slug=slug, name=name, created_by=user_id
        )
        membership = {
            "object": "organization_membership",
            "id": "orgmem_" + b64url(secrets.token_bytes(15)),
            "role": role if role.startswith("org:") else f"org:{role}",
            "role_name": role.removeprefix("org:").title(),
            "permissions": [],
            "public_metadata": {},
            "private_metadata": {},
            "created_at": now_ms,
            "updated_at": now_ms,
            "organization": organization,
            "public_user_data": {"user_id": user_id, "first_name": None, "last_name": None},
        }
        self.memberships.setdefault(user_id, []).append(membership)
        return membership

    def add_organization(
        self,
        org_id: str = "org_2exampleorganizationid00",
        *,
        slug: str = "acme",
        name: str | None = None,
        created_by: str | None = None,
    ) -> dict[str, Any]:
        """Register an organization ``GET /v1/organizations/{id or slug}`` serves; returns it.

        The same object is part of the memberships `add_membership` makes:
        edit it (``issuer.organizations[org_id]["slug"] = ...``) to rename.
        """
        now_ms = int(self.clock() * 1000)
        organization = {
            "object": "organization",
            "id": org_id,
            "name": name or slug.title(),
            "slug": slug,
            "image_url": "https://img.clerk.com/org",
            "has_image": False,
            "max_allowed_memberships": 5,
            "admin_delete_enabled": True,
            "public_metadata": {},
            "private_metadata": {},
            "created_by": created_by,
            "created_at": now_ms,
            "updated_at": now_ms,
        }
        self.organizations[org_id] = organization
        return organization

    def _serve_users(self, handler: BaseHTTPRequestHandler) -> None:
        path, _, query = handler.path.partition("?")
        authorization = handler.headers.get("Authorization")
        with self._count_lock:
            self.backend_requests.append(
                BackendRequest("GET", path, authorization, handler.headers.get("Content-Type"), b"", query)
            )
        if authorization != f"Bearer {self.secret_key}":
            self._answer(handler, 401, b'{"errors":[{"code":"authentication_invalid"}]}')
            return
        if self._backend_misbehaves(handler, self.backend_fault):
            return
        not_found = b'{"errors":[{"code":"resource_not_found","message":"not found"}]}'
        parts = path.split("/")  # "", "v1", "users", id[, "organization_memberships"]
        if parts[2] == "organizations":  # by id or by slug, as Clerk's
            found = [o for o in self.organizations.values() if parts[3:] in ([o["id"]], [o["slug"]])]
            if found:
                self._answer(handler, 200, json.dumps(found[0]).encode())
            else:
                self._answer(handler, 404, not_found)
            return
        user_id = parts[3] if len(parts) > 3 else ""
        if len(parts) == 4 and user_id in self.users:
            self._answer(handler, 200, json.dumps(self.users[user_id]).encode())
            return
        if len(parts) == 5 and parts[4] == "organization_memberships":
            params = dict(p.partition("=")[::2] for p in query.split("&") if p)
            try:
                limit = int(params.get("limit", "10"))
                offset = int(params.get("offset", "0"))
            except ValueError:
                limit = offset = -1
            if not 1 <= limit <= 500 or not 0 <= offset <= 10_000:  # Clerk's bounds
                self._answer(handler, 422, b'{"errors":[{"code":"form_param_value_invalid"}]}')
                return
            every = self.memberships.get(user_id, [])
            page = {"data": every[offset : offset + limit], "total_count": len(every)}
            self._answer(handler, 200, json.dumps(page).encode())
            return
        self._answer(handler, 404, not_found)

    def reset_backend(self) -> None:
        """Restore the fake Backend API: no fault, no recorded request, no user, organization or membership.

        (Issued machine tokens stay valid.) The ``clerk_issuer`` fixture calls it around every test.
        """
        self.set_backend_fault()
        with self._count_lock:
            self.backend_requests.clear()
        self.users.clear()
        self.memberships.clear()
        self.organizations.clear()

    def reset_count(self) -> None:
        """Zero `request_count`."""
        with self._count_lock:
            self.request_count = 0

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self._count_lock:
            self.request_count += 1
        fault = self.fault
        path = handler.path.split("?", 1)[0]
        if path == "/v1/jwks" and handler.headers.get("Authorization") != f"Bearer {self.secret_key}":
            self._answer(handler, 401, b'{"errors":[{"code":"authentication_invalid"}]}')
            return
        if path not in ("/.well-known/jwks.json", "/v1/jwks"):
            self._answer(handler, 404, b"{}")
            return
        if fault.delay:
            time.sleep(fault.delay)
        if fault.close:
            handler.close_connection = True
            handler.connection.close()
            return
        if fault.redirect is not None:
            handler.send_response(302)
            handler.send_header("Location", fault.redirect)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = fault.body if fault.body is not None else json.dumps(self.jwks()).encode()
        if fault.endless:
            self._answer_endlessly(handler, fault.status, fault.headers or {})
        elif fault.drip and fault.drip_headers:
            self._drip_everything(handler, fault.status, body, fault.drip, fault.headers or {})
        else:
            self._answer(handler, fault.status, body, drip=fault.drip, headers=fault.headers)

    @staticmethod
    def _drip_everything(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, drip: float, headers: Mapping[str, str]
    ) -> None:
        reason = handler.responses.get(status, ("",))[0]
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        handler.close_connection = True
        try:
            for byte in head.encode("latin-1") + body:
                handler.wfile.write(bytes((byte,)))
                handler.wfile.flush()
                time.sleep(drip)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _answer_endlessly(handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str]) -> None:
        handler.close_connection = True
        chunk = b" " * 65536
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Connection", "close")
            handler.end_headers()
            deadline = time.monotonic() + 60  # a safety net for a client that never stops
            while time.monotonic() < deadline:
                handler.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        drip: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if drip:
                for i in range(len(body)):
                    handler.wfile.write(body[i : i + 1])
                    handler.wfile.flush()
                    time.sleep(drip)
            else:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- configuration for clients ---------------------------------------------------
    @property
    def issuer(self) -> str:
        """The ``iss`` claim of minted tokens (``http://127.0.0.1:<port>``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def jwks_uri(self) -> str:
        """Frontend-API-style JWKS URL of the running server."""
        return f"{self.issuer}/.well-known/jwks.json"

    @property
    def api_url(self) -> str:
        """Backend-API-style base URL (``/v1/jwks`` needs `secret_key`)."""
        return self.issuer

    @property
    def publishable_key(self) -> str:
        """A ``pk_test_`` key encoding this issuer's host; derives issuer and JWKS URL."""
        return "pk_test_" + base64.b64encode(f"{self.host}:{self.port}$".encode()).decode()

    def mint_m2m(
        self,
        *,
        machine_id: str = "mch_2exampleservicea00000000",
        scopes: Iterable[str] = (),
        claims: Mapping[str, Any] | None = None,
        expires_in: float = 3600,
        header: Mapping[str, Any] | None = None,
        **payload: Any,
    ) -> str:
        """A JWT-format M2M token, as Clerk mints them (header ``cat`` ``cl_B7d4PD333AAA``).

        ``scopes`` are the machine ids it may call (space-separated
        ``scopes`` claim); ``claims`` are custom claims; other keywords set
        (or, with `MISSING`, remove) payload claims.
        """
        now = int(self.clock())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": machine_id,
            "exp": now + int(expires_in),
            "iat": now,
            "nbf": now - 10,
            "jti": "mt_" + b64url(secrets.token_bytes(15)),
        }
        if scopes:
            body["scopes"] = " ".join(scopes)
        body.update(claims or {})
        return self._sign_machine({"cat": M2M_CATEGORY, "typ": "JWT"}, body, payload, header)

    def mint_oauth(
        self,
        *,
        user_id: str = "user_2abcdefghijklmnopqrstuvwxyz",
        client_id: str = "client_2exampleoauthapp0000000",
        scopes: Iterable[str] = (),
        expires_in: float = 3600,
        typ: str = "at+jwt",
        header: Mapping[str, Any] | None = None,
        **payload: Any,
    ) -> str:
        """A JWT-format OAuth access token (RFC 9068: header ``typ`` ``at+jwt``)."""
        now = int(self.clock())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user_id,
            "client_id": client_id,
            "exp": now + int(expires_in),
            "iat": now,
            "nbf": now - 10,
            "jti": "oat_" + b64url(secrets.token_bytes(15)),
            "scope": " ".join(scopes),
        }
        return self._sign_machine({"typ": typ}, body, payload, header)

    def _sign_machine(
        self,
        head: dict[str, Any],
        body: dict[str, Any],
        payload: Mapping[str, Any],
        header: Mapping[str, Any] | None,
    ) -> str:
        head = {"alg": "RS256", "kid": self.kid, **head}
        for target, changes in ((head, header or {}), (body, payload)):
            for name, value in changes.items():
                if value is MISSING:
                    target.pop(name, None)
                else:
                    target[name] = value
        return sign(head, body, self.key)

    def env(self) -> dict[str, str]:
        """``CLERK_*`` variables that point clerkguard at this issuer."""
        return {
            "CLERK_PUBLISHABLE_KEY": self.publishable_key,
            "CLERK_JWKS_URI": self.jwks_uri,
        }

    def auth(self, **options: Any) -> ClerkAuth:
        """A [`ClerkAuth`][clerkguard.auth.ClerkAuth] for this issuer (starts the server if needed).

        Without ``transport`` it fetches over real loopback HTTP. Options
        override the defaults (``env={}`` so the process environment is ignored).
        """
        self.start()
        options.setdefault("publishable_key", self.publishable_key)
        options.setdefault("env", {})
        return ClerkAuth(**options)

    def machine_auth(self, **options: Any) -> ClerkAuth:
        """`auth` that can also verify opaque machine tokens with this fake Backend API.

        Adds ``secret_key`` and ``api_url`` (keys still come from the
        Frontend-API JWKS URL of the publishable key).
        """
        options.setdefault("secret_key", self.secret_key)
        options.setdefault("api_url", self.api_url)
        options.setdefault("jwks_uri", self.jwks_uri)
        return self.auth(**options)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document (current key first, then `extra_keys`)."""
        if self.jwks_override is not None:
            return dict(self.jwks_override)
        keys = []
        for kid, key in [(self.kid, self.key), *self.extra_keys]:
            public = key.as_dict(private=False)
            keys.append(
                {"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256", "n": public["n"], "e": public["e"]}
            )
        return {"keys": keys}

    def public_pem(self) -> str:
        """The public key as PEM (what Clerk's dashboard shows as "JWT public key")."""
        return self.key.as_pem(private=False).decode()

    def mock_transport(self) -> httpx.MockTransport:
        """An in-memory ``httpx`` transport serving [`jwks`][clerkguard.testing.LocalIssuer.jwks] (no
        sockets)."""

        def handle(request: httpx.Request) -> httpx.Response:
            with self._count_lock:
                self.request_count += 1
            return httpx.Response(200, json=self.jwks())

        return httpx.MockTransport(handle)

    def rotate(self, *, keep_old: bool = True, new_kid: str | None = None) -> None:
        """Generate a new signing key; optionally keep publishing the old one.

        Clerk's kid is the instance id, so by default the new key keeps the
        kid (``keep_old`` then needs a ``new_kid``, or the old key is dropped:
        one kid cannot name two keys).
        """
        old_kid, old_key = self.kid, self.key
        self.key = RSAKey.generate_key(self.key_bits, private=True)
        if new_kid is not None:
            self.kid = new_kid
        if keep_old and new_kid is not None and new_kid != old_kid:
            self.extra_keys.append((old_kid, old_key))

    # -- minting ------------------------------------------------------------------------
    def claims(
        self,
        *,
        user_id: str = "user_2abcdefghijklmnopqrstuvwxyz",
        session_id: str | None = None,
        expires_in: float = 60,
        issued_at: float | None = None,
        azp: str | None = None,
        version: int = 2,
        status: str = "active",
        org_id: str | None = None,
        org_slug: str | None = None,
        org_role: str | None = None,
        permissions: Iterable[str] = (),
        features: Iterable[str] = (),
        plan: str | None = None,
        fva: tuple[int, int] | None = (0, -1),
        actor: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """The payload [`mint`][clerkguard.testing.LocalIssuer.mint] would sign (see there for arguments)."""
        now = int(self.clock() if issued_at is None else issued_at)
        claims: dict[str, Any] = {
            "azp": self.azp if azp is None else azp,
            "exp": now + int(expires_in),
            "iat": now,
            "iss": self.issuer,
            "jti": b64url(secrets.token_bytes(15)),
            "nbf": now - 10,
            "sid": session_id or "sess_" + b64url(secrets.token_bytes(20))[:27],
            "sub": user_id,
        }
        perms = list(permissions)
        feats = list(features)
        if version == 2:
            claims.update({"sts": status, "v": 2})
            if fva is not None:
                claims["fva"] = list(fva)
            if plan is not None:
                claims["pla"] = plan if ":" in plan else f"o:{plan}"
            if org_id is not None or org_role is not None or perms:
                org_features, per, fpm = _encode_v2_permissions(perms, feats)
                # Org features that carry permissions come first, in mask order.
                fea = [f"o:{f}" for f in org_features]
                fea += [
                    f if ":" in f else f"o:{f}" for f in feats if f.rpartition(":")[2] not in org_features
                ]
                org = {
                    "id": org_id or "org_2exampleorganizationid00",
                    "rol": (org_role or "member").removeprefix("org:"),
                }
                org["slg"] = org_slug or "acme"
                if per:
                    org["per"] = ",".join(per)
                    org["fpm"] = ",".join(str(m) for m in fpm)
                claims["o"] = org
                if fea:
                    claims["fea"] = ",".join(fea)
            elif feats:
                claims["fea"] = ",".join(f if ":" in f else f"u:{f}" for f in feats)
        else:
            if org_id is not None or org_role is not None or perms:
                claims["org_id"] = org_id or "org_2exampleorganizationid00"
                role = org_role or "member"
                claims["org_role"] = role if role.startswith("org:") else f"org:{role}"
                claims["org_slug"] = org_slug or "acme"
                claims["org_permissions"] = perms
        if actor is not None:
            claims["act"] = dict(actor)
        for name, value in extra.items():
            if value is MISSING:
                claims.pop(name, None)
            else:
                claims[name] = value
        # MISSING also removes claims set by named options (azp=MISSING, status=MISSING).
        return {name: value for name, value in claims.items() if value is not MISSING}

    def mint(
        self,
        *,
        header: Mapping[str, Any] | None = None,
        key: RSAKey | None = None,
        claims: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> str:
        """Sign a Clerk-shaped session token.

        Keyword arguments of [`claims`][clerkguard.testing.LocalIssuer.claims] shape the payload (``user_id``,
        ``org_role``, ``permissions=["org:invoices:read"]``, ``features``,
        ``plan``, ``fva``, ``expires_in``, ``version=1``, ``status="pending"``,
        ``actor``...); any other keyword sets that claim, and `MISSING`
        removes it. ``claims`` replaces the payload entirely. ``header``
        entries override the header (``MISSING`` removes one); ``key`` signs
        with another key (to forge).
        """
        payload = dict(claims) if claims is not None else self.claims(**options)
        head: dict[str, Any] = {"alg": "RS256", "cat": SESSION_CATEGORY, "kid": self.kid, "typ": "JWT"}
        for name, value in (header or {}).items():
            if value is MISSING:
                head.pop(name, None)
            else:
                head[name] = value
        return sign(head, payload, key or self.key)


def session_cookies(
    token: str, *, client_uat: int | None = None, suffix: str | None = None
) -> dict[str, str]:
    """The cookies a browser signed in with Clerk sends: ``__session`` and ``__client_uat``.

    ``__client_uat`` (Clerk's ``SameSite=Strict`` "client updated at" cookie)
    defaults to the token's own ``iat``, which the guard's cookie rule accepts;
    pass ``client_uat=0`` for a signed-out client, or a later time for a token
    older than the last sign-in change. ``suffix`` names Clerk's suffixed
    variants (``__session_<suffix>``; see
    [`clerkguard.adapters.cookie_names_for`][clerkguard.adapters.cookie_names_for]).
    """
    if client_uat is None:
        payload = token.split(".")[1]
        client_uat = int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iat"])
    tail = "" if suffix is None else f"_{suffix}"
    return {f"__session{tail}": token, f"__client_uat{tail}": str(client_uat)}


def cookie_header(cookies: Mapping[str, str]) -> str:
    """A ``Cookie`` request header value for ``cookies``."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def sign(header: Mapping[str, Any], payload: Mapping[str, Any], key: RSAKey) -> str:
    """RS256-sign ``payload`` under ``header`` exactly as given (compact JSON)."""
    h = b64url(json.dumps(dict(header), separators=(",", ":")).encode())
    p = b64url(json.dumps(dict(payload), separators=(",", ":")).encode())
    signing_input = f"{h}.{p}".encode()
    signature = JWSRegistry.algorithms["RS256"].sign(signing_input, key)
    return f"{h}.{p}.{b64url(signature)}"


def _encode_v2_permissions(
    permissions: list[str], features: list[str]
) -> tuple[list[str], list[str], list[int]]:
    """Inverse of `clerkguard.session.decode_org_permissions`.

    ``org:feature:perm`` strings become (org features, ``per`` list, ``fpm`` masks).
    """
    org_features: list[str] = []
    per: list[str] = []
    grants: dict[str, set[int]] = {}
    for perm in permissions:
        parts = perm.removeprefix("org:").split(":")
        if len(parts) != 2:
            raise ValueError(f"v2 permissions look like org:<feature>:<permission>, got {perm!r}")
        feature, name = parts
        if feature not in org_features:
            org_features.append(feature)
        if name not in per:
            per.append(name)
        grants.setdefault(feature, set()).add(per.index(name))
    masks = [sum(1 << bit for bit in grants.get(feature, ())) for feature in org_features]
    return org_features, per, masks


# -- webhooks -----------------------------------------------------------------------------------
def sign_webhook(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``svix-signature`` entry Svix sends: ``v1,`` + base64(HMAC-SHA256).

    Written from the Svix / Standard Webhooks spec, independently of the
    ``standardwebhooks`` library that `clerkguard.webhooks` verifies
    with (the tests check both against the spec's published example). The
    key is the base64 part of a ``whsec_...`` secret, or ``bytes`` as is;
    the signed content is ``"{msg_id}.{timestamp}.".encode() + body``.
    """
    if isinstance(secret, str):
        text = secret.removeprefix("whsec_")
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    else:
        key = secret
    content = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookSigner:
    """Signs webhook deliveries exactly as Svix does for Clerk, to test handlers without Clerk.

    ::

        signer = WebhookSigner()          # a fresh random whsec_ secret
        body, headers = signer.delivery("user.created", {"id": "user_1", "object": "user"})
        client.post("/webhooks/clerk", data=body, headers=headers)

    Args:
        secret: The ``whsec_...`` secret (default: a random one, like Clerk's:
            24 random bytes).
        clock: ``() -> Unix seconds`` for the ``svix-timestamp`` (default ``time.time``).
        instance_id: The ``instance_id`` of the payloads
            [`delivery`][clerkguard.testing.WebhookSigner.delivery] builds.
    """

    def __init__(
        self,
        secret: str | None = None,
        *,
        clock: Callable[[], float] | None = None,
        instance_id: str = "ins_test",
    ) -> None:
        self.secret = secret or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")
        """The ``whsec_...`` signing secret (give it to the app under test)."""
        self.clock = clock or time.time
        self.instance_id = instance_id

    def sign(self, body: bytes, *, msg_id: str, timestamp: int) -> str:
        """The ``v1,<base64>`` signature of ``body`` (see
        [`sign_webhook`][clerkguard.testing.sign_webhook])."""
        return sign_webhook(self.secret, msg_id, timestamp, body)

    def headers(
        self,
        body: bytes,
        *,
        msg_id: str | None = None,
        timestamp: int | None = None,
        prefix: str = "svix",
    ) -> dict[str, str]:
        """``svix-id``/``svix-timestamp``/``svix-signature`` for ``body`` (``prefix="webhook"``
        for the Standard Webhooks names). Defaults: a random ``msg_`` id, now."""
        msg_id = msg_id or "msg_" + b64url(secrets.token_bytes(18))
        timestamp = int(self.clock()) if timestamp is None else int(timestamp)
        return {
            f"{prefix}-id": msg_id,
            f"{prefix}-timestamp": str(timestamp),
            f"{prefix}-signature": self.sign(body, msg_id=msg_id, timestamp=timestamp),
            "content-type": "application/json",
        }

    def payload(self, event_type: str, data: Mapping[str, Any]) -> bytes:
        """A Clerk-shaped event body: ``{"data", "instance_id", "object": "event", "timestamp", "type"}``."""
        event = {
            "data": dict(data),
            "instance_id": self.instance_id,
            "object": "event",
            "timestamp": int(self.clock() * 1000),
            "type": event_type,
        }
        return json.dumps(event).encode()

    def delivery(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        msg_id: str | None = None,
        timestamp: int | None = None,
        prefix: str = "svix",
    ) -> tuple[bytes, dict[str, str]]:
        """A signed Clerk event: ``(body, headers)`` ready to POST."""
        body = self.payload(event_type, data)
        return body, self.headers(body, msg_id=msg_id, timestamp=timestamp, prefix=prefix)
