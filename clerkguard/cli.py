"""The ``clerkguard`` command line (also ``python -m clerkguard``).

Commands:

    clerkguard verify TOKEN|-      verify any kind of token (``--accepts-token``) as an app would
    clerkguard decode TOKEN|-      show its kind, header and claims WITHOUT verifying them
    clerkguard jwks                fetch the configured JWKS and explain every key
    clerkguard dev-issuer          a local Clerk-like issuer (and Backend API fake) on loopback
    clerkguard mint                make a token of any kind for a dev issuer (``--key-file``)
    clerkguard demo                verification end to end, in-process or across the examples
    clerkguard webhook sign|verify sign a webhook body like Svix / check a captured delivery

``-`` reads the token from standard input, so it never lands in shell
history. Exit codes (see `EXIT_CODES`): ``0`` success, ``1`` invalid
(token rejected, undecodable, or no usable key), ``2`` unavailable (keys could
not be fetched, or the Backend API did not answer), ``64`` usage error, ``78``
configuration error.

Nothing here prints a token it was given, nor a secret key; ``mint`` prints
the token it signs, because that is its job.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import json
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn

from . import __version__
from ._frozen import thaw
from .config import DEFAULT_API_URL, ENV_VARS, env_value, safe_url
from .errors import AuthError, ConfigurationError

__all__ = [
    "EXIT_CODES",
    "EXIT_CONFIG",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "UsageError",
    "main",
]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNAVAILABLE = 2
EXIT_USAGE = 64  # sysexits.h EX_USAGE; argparse's own 2 would collide with "unavailable"
EXIT_CONFIG = 78  # sysexits.h EX_CONFIG

#: Exit code -> meaning, as documented in ``docs/cli.md``.
EXIT_CODES: Mapping[int, str] = {
    EXIT_OK: "success",
    EXIT_INVALID: "invalid: the token was rejected or cannot be decoded, or the JWKS has no usable key",
    EXIT_UNAVAILABLE: "unavailable: signing keys could not be fetched, or the Backend API gave no answer",
    EXIT_USAGE: "usage error: unknown command, missing or malformed arguments",
    EXIT_CONFIG: "configuration error: no key source, a malformed key or option, a missing secret key",
}

#: The ``azp`` that dev tokens carry and dev apps should allow (a typical local frontend).
DEV_AUTHORIZED_PARTY = "http://localhost:3000"
#: The OAuth application ``mint --kind oauth`` issues for, unless ``--client-id`` names another.
DEV_CLIENT_ID = "client_dev"
#: Largest input ``decode`` and ``verify`` read (verification itself stops at 8 KiB).
MAX_INPUT = 64 * 1024
_TIME_CLAIMS = ("iat", "nbf", "exp", "auth_time")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class UsageError(Exception):
    """Bad arguments or input; exits with `EXIT_USAGE`."""


class _Failure(Exception):
    """A clean, expected failure: message on stderr, given exit code, no traceback."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 64 (2 means "keys unavailable" here)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# -- small helpers ---------------------------------------------------------------------------
def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _read_token(arg: str, stdin: IO[str] | None = None) -> str:
    """The token from the argument, or from stdin for ``-`` (never echoed).

    Input that cannot be a token (empty, binary, huge) is an invalid token
    (exit 1), like any other garbage.
    """
    if arg == "-":
        stream = stdin or sys.stdin
        if stream.isatty():
            # Interactive: read without echo so the token is not left on screen.
            text = getpass.getpass("token (input hidden): ")
        else:
            raw = getattr(stream, "buffer", None)
            data = raw.read(MAX_INPUT + 1) if raw is not None else stream.read(MAX_INPUT + 1)
            # Bytes that are not UTF-8 become U+FFFD, which the ASCII checks then reject.
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    else:
        text = arg
    if len(text) > MAX_INPUT:
        raise _Failure(
            f"error: input is longer than {MAX_INPUT // 1024} KiB; not a Clerk token", EXIT_INVALID
        )
    text = text.strip()
    # Tolerate a pasted "Authorization" header value.
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    if not text:
        where = " on standard input" if arg == "-" else ""
        raise _Failure(f"error: no token given{where}", EXIT_INVALID)
    return text


def _duration(seconds: float) -> str:
    """``42s``, ``3m``, ``5h``, ``2d``: the largest whole unit."""
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _relative(claim: str, ts: float, now: float) -> str:
    """Human wording for a time claim relative to ``now``."""
    delta = ts - now
    if claim == "exp":
        return f"expires in {_duration(delta)}" if delta > 0 else f"expired {_duration(delta)} ago"
    if claim == "nbf":
        return f"valid since {_duration(delta)} ago" if delta <= 0 else f"not valid for {_duration(delta)}"
    if claim == "iat":
        return f"issued {_duration(delta)} ago" if delta <= 0 else f"issued {_duration(delta)} in the FUTURE"
    return f"{_duration(delta)} ago" if delta <= 0 else f"in {_duration(delta)}"


def _humanise(claim: str, value: object, now: float) -> dict[str, str] | None:
    """ISO time and relative wording of a numeric time claim, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return {"iso": _iso(value), "relative": _relative(claim, value, now)}
    except (OverflowError, OSError, ValueError):  # absurd timestamps
        return None


def _table(rows: Sequence[tuple[str, str]], indent: str = "  ") -> str:
    if not rows:
        return f"{indent}(none)"
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{indent}{k.ljust(width)}  {v}".rstrip() for k, v in rows)


# -- configuration shared by verify and jwks ---------------------------------------------------
def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "configuration",
        "Defaults come from CLERK_* environment variables; the secret keys are read only from "
        "CLERK_SECRET_KEY and CLERK_MACHINE_SECRET_KEY (never pass secrets on a command line).",
    )
    group.add_argument(
        "--publishable-key", metavar="PK", help="pk_test_/pk_live_ key (CLERK_PUBLISHABLE_KEY)"
    )
    group.add_argument("--jwks-uri", metavar="URL", help="explicit JWKS URL (CLERK_JWKS_URI)")
    group.add_argument(
        "--jwt-key-file", metavar="PATH", help="PEM public key file (instead of CLERK_JWT_KEY)"
    )
    group.add_argument("--issuer", metavar="URL", help="exact iss to require (CLERK_ISSUER)")
    group.add_argument(
        "--api-url", metavar="URL", help=f"Backend API base URL (CLERK_API_URL; {DEFAULT_API_URL})"
    )
    group.add_argument(
        "--authorized-party",
        metavar="ORIGIN",
        action="append",
        help="allowed azp, repeatable (CLERK_AUTHORIZED_PARTIES)",
    )
    group.add_argument("--clock-skew", type=float, default=5.0, metavar="S", help="leeway seconds (5)")
    group.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="JWKS / Backend API request timeout (5)"
    )


#: Stand-ins for settings an opaque token never reaches (it is judged by the Backend API
#: alone), so that verifying one does not demand them. Never fetched, never compared.
_UNUSED_ISSUER = "unused:opaque-tokens-are-judged-by-the-backend-api"
_UNUSED_JWKS_URI = "http://127.0.0.1:9/unused-opaque-tokens-need-no-keys"


def _require_backend_secret(kind: str) -> None:
    """Exit 78 unless a secret key that may verify an opaque ``kind`` is configured."""
    env = os.environ
    names = ["machine_secret_key", "secret_key"] if kind == "m2m_token" else ["secret_key"]
    if any(env_value(name, None, env) is not None for name in names):
        return
    variables = " or ".join(ENV_VARS[name] for name in names)
    raise _Failure(
        f"configuration error: an opaque {_LABELS[kind]} ({_PREFIX_OF[kind]}...) is verified by the "
        f"Backend API: set {variables} (and CLERK_API_URL or --api-url for a Backend API other "
        f"than {DEFAULT_API_URL})",
        EXIT_CONFIG,
    )


def _build_auth(args: argparse.Namespace, opaque: str | None = None) -> Any:
    """The `ClerkAuth` the command verifies with; ``opaque``: the kind of an opaque token to verify."""
    from .auth import ClerkAuth

    pem = None
    if args.jwt_key_file is not None:
        try:
            pem = Path(args.jwt_key_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise _Failure(f"cannot read --jwt-key-file: {exc.__class__.__name__}", EXIT_CONFIG) from None
    options: dict[str, Any] = {
        "publishable_key": args.publishable_key,
        "jwks_uri": args.jwks_uri,
        "jwt_key": pem,
        "issuer": args.issuer,
        "api_url": args.api_url,
    }
    if opaque is not None:
        env = os.environ
        if all(env_value(name, options[name], env) is None for name in ("issuer", "publishable_key")):
            options["issuer"] = _UNUSED_ISSUER
        sources = ("publishable_key", "jwks_uri", "jwt_key", "secret_key")
        if all(env_value(name, options.get(name), env) is None for name in sources):
            options["jwks_uri"] = _UNUSED_JWKS_URI  # only a machine secret key is configured
    try:
        return ClerkAuth(
            **options,
            authorized_parties=args.authorized_party,
            clock_skew=args.clock_skew,
            http_timeout=args.timeout,
            token_cache_size=0,
            machine_cache_size=0,
        )
    except ConfigurationError as exc:
        raise _Failure(f"configuration error: {exc}", EXIT_CONFIG) from None


# -- verify ----------------------------------------------------------------------------------
def _session_fields(session: Any) -> dict[str, Any]:
    return {
        "user_id": session.user_id,
        "session_id": session.session_id,
        "session_status": session.session_status,
        "org_id": session.org_id,
        "org_role": session.org_role,
        "org_slug": session.org_slug,
        "org_permissions": list(session.org_permissions),
        "features": list(session.features),
        "plans": list(session.plans),
        "actor": thaw(session.actor),
        "factor_verification_age": thaw(session.factor_verification_age),
        "issuer": session.issuer,
        "authorized_party": session.authorized_party,
        "issued_at": session.issued_at,
        "expires_at": session.expires_at,
        "version": session.version,
    }


def _credential_fields(credential: Any) -> dict[str, Any]:
    return {
        "kind": credential.token_type,
        "format": credential.format,
        "id": credential.id or None,
        "subject": credential.subject,
        "scopes": list(credential.scopes),
        "name": credential.name,
        "client_id": credential.client_id,
        "claims": thaw(credential.claims),
        "issued_at": credential.issued_at,
        "expires_at": credential.expires_at,
    }


def _accepted(values: Sequence[str] | None) -> frozenset[str]:
    """``--accepts-token`` (repeatable, comma lists) as `ClerkAuth.verify` takes it."""
    from .machine import SESSION_TOKEN, accepted_kinds

    names = [name.strip() for value in values or () for name in value.split(",") if name.strip()]
    try:
        return accepted_kinds(SESSION_TOKEN if not names else names[0] if names == ["any"] else names)
    except ConfigurationError as exc:
        raise UsageError(str(exc).replace("accepts_token", "--accepts-token", 1)) from None


def _time_row(claim: str, value: Any, now: float) -> str:
    if value is None:
        return "never" if claim == "exp" else "-"
    human = _humanise(claim, value, now)
    return f"{_iso(value)}  ({human['relative']})" if human else str(value)


def _cmd_verify(args: argparse.Namespace) -> int:
    token = _read_token(args.token)
    accepted = _accepted(args.accepts_token)
    kind, token_format, _ = classify(token)
    opaque = kind if token_format == "opaque" else None
    if opaque is not None and opaque in accepted:
        _require_backend_secret(opaque)
    auth = _build_auth(args, opaque)
    try:
        result = auth.verify(token, accepts_token=accepted)
    except AuthError as error:
        code = EXIT_UNAVAILABLE if error.status == 503 else EXIT_INVALID
        if args.json:
            body: dict[str, Any] = {"valid": False, "status": error.status, "reason": error.reason}
            body["detail"] = error.detail
            if error.retry_after is not None:
                body["retry_after"] = error.retry_after
            _out(json.dumps(body, indent=2))
        else:
            label = "UNAVAILABLE" if code == EXIT_UNAVAILABLE else "INVALID"
            _err(f"{label}: {error.status} {error.reason} ({error.detail})")
            if error.reason == "token-type-not-accepted" and kind is not None:
                _err(f"hint: this is {_article(kind)}; pass --accepts-token {kind} (or any) to verify it")
        return code
    finally:
        auth.close()
    if result.token_type != "session_token":
        return _print_credential(args, result, auth)
    fields = _session_fields(result)
    if args.json:
        body = {"valid": True, "kind": "session_token", "session": fields, "claims": thaw(result.claims)}
        _out(json.dumps(body, indent=2))
        return EXIT_OK
    now = time.time()
    rows: list[tuple[str, str]] = []
    for name, value in fields.items():
        if name in ("issued_at", "expires_at"):
            text = _time_row("iat" if name == "issued_at" else "exp", value, now)
        elif isinstance(value, list):
            text = ", ".join(map(str, value)) if value else "-"
        elif value is None:
            text = "-"
        else:
            text = str(value) if not isinstance(value, dict) else json.dumps(value)
        rows.append((name, text))
    _out(f"VALID session token (issuer {result.issuer})")
    _out(_table(rows))
    return EXIT_OK


def _print_credential(args: argparse.Namespace, credential: Any, auth: Any) -> int:
    """A verified machine credential (never the token; the id is Clerk's id, not the secret)."""
    fields = _credential_fields(credential)
    if args.json:
        body = {"valid": True, "kind": credential.token_type, "credential": fields}
        body["raw"] = thaw(credential.raw)
        _out(json.dumps(body, indent=2))
        return EXIT_OK
    if credential.format == "jwt":
        how = "JWT, verified locally with the instance's keys"
    else:
        how = f"opaque, verified by the Backend API at {safe_url(auth.backend.api_url)}"
    now = time.time()
    rows: list[tuple[str, str]] = []
    for name, value in fields.items():
        if name in ("issued_at", "expires_at"):
            text = _time_row("iat" if name == "issued_at" else "exp", value, now)
        elif name == "scopes":
            text = ", ".join(value) if value else "-"
        elif name == "claims":
            text = json.dumps(value) if value else "-"
        else:
            text = "-" if value is None else str(value)
        rows.append((name, text))
    _out(f"VALID {_LABELS[credential.token_type]} ({how})")
    _out(_table(rows))
    return EXIT_OK


# -- decode ----------------------------------------------------------------------------------
def _segment(text: str, what: str) -> dict[str, Any]:
    from ._core.jsonstrict import StrictJSONError, loads_object

    # b64decode silently drops characters outside the alphabet; check it first.
    if _BASE64URL.fullmatch(text) is None or len(text) % 4 == 1:
        raise _Failure(f"error: the {what} segment is not base64url without padding", EXIT_INVALID)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _Failure(f"error: the {what} segment is not base64url", EXIT_INVALID) from None
    try:
        return loads_object(raw)
    except StrictJSONError as exc:
        raise _Failure(f"error: the {what} is not a strict JSON object ({exc})", EXIT_INVALID) from None


def decode_token(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split and decode a JWT's header and claims WITHOUT verifying anything.

    Raises:
        _Failure: with a clean message for anything that is not a decodable JWT.
    """
    if not token.isascii() or not token.isprintable():
        raise _Failure("error: not a JWT: it contains non-ASCII or control characters", EXIT_INVALID)
    parts = token.split(".")
    if len(parts) != 3:
        raise _Failure(
            f"error: not a JWT: expected three dot-separated segments, found {len(parts)}", EXIT_INVALID
        )
    return _segment(parts[0], "header"), _segment(parts[1], "payload")


def classify(token: str) -> tuple[str | None, str | None, str | None]:
    """What [`ClerkAuth.verify`][clerkguard.auth.ClerkAuth.verify] takes ``token`` for, before any key
    lookup or request: ``(kind, format, refusal)``.

    ``kind`` is ``session_token``, ``m2m_token``, ``oauth_token`` or ``api_key``
    and ``format`` ``"jwt"`` or ``"opaque"``; ``refusal`` is the reason verify
    would refuse the token outright (``None`` when it would go on to check the
    signature or ask the Backend API). A JWT whose shape or header is refused
    has no kind. Uses the verifier's own rules, so the answers agree with it.
    """
    from ._core.token import HeaderCache, parse_token
    from .auth import ClerkAuth, _check_opaque, _opaque_kind
    from .machine import KINDS

    opaque = _opaque_kind(token)
    if opaque is not None:
        try:
            _check_opaque(token)
        except AuthError as error:
            return opaque, "opaque", error.reason
        return opaque, "opaque", None
    try:
        kind, _ = ClerkAuth._jwt_kind(parse_token(token, HeaderCache()), KINDS)
    except AuthError as error:
        return None, None, error.reason
    return kind, "jwt", None


#: How the output names each kind.
_LABELS: Mapping[str, str] = {
    "session_token": "session token",
    "m2m_token": "M2M token",
    "oauth_token": "OAuth access token",
    "api_key": "API key",
}
_PREFIX_OF: Mapping[str, str] = {"m2m_token": "mt_", "oauth_token": "oat_", "api_key": "ak_"}


def _article(kind: str) -> str:
    """``a session token (session_token)``, ``an M2M token (m2m_token)``."""
    return f"{'a' if kind == 'session_token' else 'an'} {_LABELS[kind]} ({kind})"


def _cmd_decode(args: argparse.Namespace) -> int:
    token = _read_token(args.token)
    kind, token_format, refusal = classify(token)
    if token_format == "opaque" and kind is not None:
        return _decode_opaque(args, kind, refusal)
    header, claims = decode_token(token)
    now = time.time()
    times = {c: h for c in _TIME_CLAIMS if (h := _humanise(c, claims.get(c), now)) is not None}
    if args.json:
        body = {"verified": False, "kind": kind, "format": "jwt", "header": header, "claims": claims}
        body["times"] = times
        body["shape_and_header"] = refusal or "ok"
        _out(json.dumps(body, indent=2))
        return EXIT_OK
    _out("UNVERIFIED: decoded WITHOUT checking the signature. Anyone can write these values;")
    _out("use `clerkguard verify` to check them.")
    if kind is None:
        _out("kind    none that verify accepts (see the note below)")
    else:
        flag = "" if kind == "session_token" else f" --accepts-token {kind}"
        _out(f"kind    {_article(kind)}, a JWT: `clerkguard verify{flag}` checks it locally")
    _out("header")
    _out(_table([(k, json.dumps(v)) for k, v in header.items()]))
    _out("claims")
    rows = []
    for name, value in claims.items():
        text = json.dumps(value)
        if name in times:
            text += f"  {times[name]['iso']}  ({times[name]['relative']})"
        rows.append((name, text))
    _out(_table(rows))
    if refusal is not None:
        _out(f"note: verify would reject this token before any key lookup: {refusal}")
    return EXIT_OK


def _decode_opaque(args: argparse.Namespace, kind: str, refusal: str | None) -> int:
    """An opaque token holds nothing readable: say what it is and who can judge it."""
    if args.json:
        body = {"verified": False, "kind": kind, "format": "opaque", "header": None, "claims": None}
        body.update(times={}, shape_and_header=refusal or "ok")
        _out(json.dumps(body, indent=2))
        return EXIT_OK
    _out(f"UNVERIFIED: an opaque {_LABELS[kind]} ({kind}, {_PREFIX_OF[kind]}...). Opaque tokens carry")
    _out("nothing readable: they cannot be decoded locally. Only the Backend API can tell whether")
    _out(f"it is valid and whose it is: `clerkguard verify --accepts-token {kind}` asks it.")
    if refusal is not None:
        _out(f"note: verify would reject this token before any request: {refusal}")
    return EXIT_OK


# -- jwks ------------------------------------------------------------------------------------
def _fetch_document(url: str, headers: Mapping[str, str], timeout: float) -> bytes:
    """GET the JWKS through the library's own hardened request (no redirects, bounded time and size)."""
    from ._http import FetchControl, FetchError, HTTPRequest, request_sync

    try:
        return request_sync(HTTPRequest("GET", url, headers), FetchControl(timeout)).body
    except FetchError as exc:
        # An oversized document is the endpoint's content, not an outage.
        code = EXIT_INVALID if str(exc).startswith("body larger") else EXIT_UNAVAILABLE
        raise _Failure(str(exc), code) from None


def _modulus_bits(jwk: Mapping[str, Any]) -> int | None:
    n = jwk.get("n")
    if not isinstance(n, str) or not n or len(n) > 4096:
        return None
    try:
        return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big").bit_length()
    except (binascii.Error, ValueError):
        return None


def explain_jwks(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """One row per published key (kid, kty, bits, status, reason) and the set-level error.

    Uses `clerkguard._core.keys.parse_jwks`, so the verdicts are exactly
    the ones verification applies.
    """
    from ._core.jsonstrict import StrictJSONError, loads_object
    from ._core.keys import MAX_KEYS, JWKSError, SkippedKey, parse_jwks

    error: str | None = None
    usable: Mapping[str, Any] = {}
    skipped: tuple[SkippedKey, ...] = ()
    try:
        keyset = parse_jwks(data)
        usable, skipped = keyset.keys, keyset.skipped
    except JWKSError as exc:
        error, skipped = str(exc), exc.skipped
    try:
        raw_keys = loads_object(data).get("keys")
    except StrictJSONError:
        raw_keys = None
    if not isinstance(raw_keys, list):
        return [], error
    # Reasons by kid, in document order; one kid may have several skipped entries.
    reasons: dict[str | None, list[str]] = {}
    for item in skipped:
        reasons.setdefault(item.kid, []).append(item.reason)
    rows = []
    for jwk in raw_keys[:MAX_KEYS]:
        if not isinstance(jwk, dict):
            rows.append({"kid": None, "kty": None, "bits": None, "status": "unusable"})
            rows[-1]["reason"] = _take(reasons, None)
            continue
        kid = jwk.get("kid")
        kid_key = kid if isinstance(kid, str) and kid and len(kid) <= 256 else None
        row: dict[str, Any] = {"kid": kid_key, "kty": jwk.get("kty"), "bits": _modulus_bits(jwk)}
        if kid_key is not None and kid_key in usable:
            row.update(status="usable", reason=None)
        else:
            row.update(status="unusable", reason=_take(reasons, kid_key))
        rows.append(row)
    if len(raw_keys) > MAX_KEYS:
        error = error or f"more than {MAX_KEYS} keys; the rest were ignored"
    return rows, error


def _take(reasons: dict[str | None, list[str]], kid: str | None) -> str:
    found = reasons.get(kid)
    if not found:
        return "invalid key"
    # A kid shared by two different keys has one reason for both entries.
    return found[0] if len(found) == 1 else found.pop(0)


def _jwks_headers(args: argparse.Namespace) -> dict[str, str]:
    """The Backend API JWKS needs the secret key (read from the environment only)."""
    env = os.environ
    secret = env_value("secret_key", None, env)
    explicit_uri = env_value("jwks_uri", args.jwks_uri, env)
    if secret is not None and explicit_uri is None:
        return {"Authorization": f"Bearer {secret}"}
    return {}


def _cmd_jwks(args: argparse.Namespace) -> int:
    auth = _build_auth(args)
    auth.close()
    url: str | None = auth.jwks_uri
    if url is None:
        key = auth.keyring.static_key
        bits = key.public_key.key_size if key is not None else "?"
        if args.json:
            _out(json.dumps({"jwks_uri": None, "source": "jwt_key", "bits": bits}, indent=2))
        else:
            _out(f"no JWKS: keys come from the configured PEM public key (jwt_key, {bits} bits)")
        return EXIT_OK
    # Shown everywhere below without credentials or query (`?api_key=...`).
    shown = safe_url(url)
    try:
        data = _fetch_document(url, _jwks_headers(args), args.timeout)
    except _Failure as failure:
        if args.json:
            _out(json.dumps({"jwks_uri": shown, "keys": [], "error": str(failure)}, indent=2))
        else:
            _err(f"{'UNAVAILABLE' if failure.code == EXIT_UNAVAILABLE else 'INVALID'}: {shown}: {failure}")
        return failure.code
    rows, error = explain_jwks(data)
    code = EXIT_OK if any(r["status"] == "usable" for r in rows) else EXIT_INVALID
    if args.json:
        _out(json.dumps({"jwks_uri": shown, "keys": rows, "error": error}, indent=2))
        return code
    good = sum(r["status"] == "usable" for r in rows)
    _out(f"JWKS {shown}: {len(rows)} key{'s' * (len(rows) != 1)}, {good} usable")
    table = [("KID", "TYPE", "BITS", "STATUS", "WHY")]
    for r in rows:
        bits = str(r["bits"]) if r["bits"] is not None else "-"
        table.append((str(r["kid"] or "-"), str(r["kty"] or "-"), bits, r["status"], r["reason"] or ""))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        _out("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if error is not None:
        _out(f"problem: {error}")
    return code


# -- dev issuer and mint -----------------------------------------------------------------------
def dev_kid(key: Any) -> str:
    """The kid of a dev issuer's key: derived from it (RFC 7638 thumbprint).

    ``mint`` and ``dev-issuer`` agree on it without sharing anything but the key file.
    """
    return "ins_dev_" + str(key.thumbprint())[:24]


def dev_secret_key(key: Any) -> str:
    """The dev issuer's Backend API secret key (``sk_test_...``): derived from its private key.

    A restarted issuer keeps it, so a ``.env`` written from its output stays
    valid; it opens only the issuer's own Backend API fake.
    """
    from .testing import b64url, derive_secret

    return "sk_test_dev" + b64url(derive_secret(key, "dev-issuer secret key"))[:32]


def _check_key_permissions(path: Path) -> None:
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise _Failure(
            f"error: {path} is readable by others; a private key must be private (chmod 600 {path})",
            EXIT_CONFIG,
        )


def load_key_file(path: Path) -> Any:
    """Load a dev issuer's private key (PEM, must not be group/world accessible)."""
    from joserfc.jwk import RSAKey

    try:
        _check_key_permissions(path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise _Failure(
            f"error: no key file at {path}; start `clerkguard dev-issuer --key-file {path}` first",
            EXIT_CONFIG,
        ) from None
    except OSError as exc:
        raise _Failure(f"error: cannot read {path}: {exc.__class__.__name__}", EXIT_CONFIG) from None
    try:
        key = RSAKey.import_key(data)
    except Exception:  # joserfc/cryptography raise many types for garbage
        key = None
    if key is None or not key.is_private:
        raise _Failure(f"error: {path} is not a PEM RSA private key", EXIT_CONFIG)
    return key


def create_key_file(path: Path) -> Any:
    """Generate a 2048-bit RSA key and write it as PEM, created with mode 0600."""
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, private=True)
    try:
        # O_EXCL: never follow a planted symlink or clobber a file; 0o600 from birth.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise _Failure(f"error: cannot create {path}: {exc.__class__.__name__}", EXIT_CONFIG) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.as_pem(private=True))
    return key


class _Stop(Exception):
    """Raised by the SIGTERM handler to unwind like Ctrl-C."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _cmd_dev_issuer(args: argparse.Namespace) -> int:
    from .testing import LocalIssuer

    tmpdir: str | None = None
    if args.key_file is None:
        tmpdir = tempfile.mkdtemp(prefix="clerkguard-dev-")
        key_path = Path(tmpdir) / "issuer.pem"
    else:
        key_path = Path(args.key_file)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    issuer = None
    try:
        key = load_key_file(key_path) if key_path.exists() else create_key_file(key_path)
        issuer = LocalIssuer(
            kid=dev_kid(key),
            host="127.0.0.1",
            port=args.port,
            azp=DEV_AUTHORIZED_PARTY,
            secret_key=dev_secret_key(key),
        )
        issuer.key = key
        try:
            issuer.start()
        except OSError as exc:
            raise _Failure(
                f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", EXIT_USAGE
            ) from None
        # stdout: only KEY=VALUE lines (dotenv format), so it can be redirected to a file.
        for name, value in issuer.env().items():
            _out(f"{name}={value}")
        _out(f"CLERK_AUTHORIZED_PARTIES={DEV_AUTHORIZED_PARTY}")
        # Its Backend API fake, for opaque machine tokens; this secret opens nothing else.
        _out(f"CLERK_API_URL={issuer.api_url}")
        _out(f"CLERK_SECRET_KEY={issuer.secret_key}")
        _err(f"clerkguard dev issuer on {issuer.issuer} (kid {issuer.kid}); Ctrl-C to stop")
        _err(f"private key: {key_path}" + (" (temporary, removed on exit)" if tmpdir else ""))
        mint = f"clerkguard mint --key-file {key_path}"
        _err("mint a token:")
        _err(f"  {mint} --issuer {issuer.issuer} --user user_123 --role admin")
        _err(f"  {mint} --issuer {issuer.issuer} --kind m2m --subject mch_billing --scopes mch_invoices")
        _err(f"  {mint} --kind api_key --subject user_123 --scopes orders:read")
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, _Stop):
        _err("dev issuer stopped")
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)
        if issuer is not None:
            issuer.stop()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _mint_issuer(args: argparse.Namespace) -> str:
    from .config import parse_publishable_key

    if args.issuer:
        return str(args.issuer)
    explicit = env_value("issuer", None, os.environ)
    if explicit:
        return explicit
    pk = env_value("publishable_key", None, os.environ)
    if pk:
        try:
            return parse_publishable_key(pk).issuer
        except ConfigurationError as exc:
            raise _Failure(f"configuration error: {exc}", EXIT_CONFIG) from None
    raise UsageError("say which issuer to mint for: --issuer URL (or set CLERK_PUBLISHABLE_KEY)")


#: ``--kind`` values: the short names and Clerk's.
_MINT_KINDS: Mapping[str, str] = {
    "session": "session_token",
    "m2m": "m2m_token",
    "oauth": "oauth_token",
    "api_key": "api_key",
    "api-key": "api_key",
    "session_token": "session_token",
    "m2m_token": "m2m_token",
    "oauth_token": "oauth_token",
}
#: Each kind's ``--kind`` name.
_MINT_NAME: Mapping[str, str] = {
    "session_token": "session",
    "m2m_token": "m2m",
    "oauth_token": "oauth",
    "api_key": "api_key",
}
#: Options that only make sense for some kinds: option -> (attribute, kinds).
_MINT_ONLY: Mapping[str, tuple[str, frozenset[str]]] = {
    "--org": ("org", frozenset({"session_token"})),
    "--role": ("role", frozenset({"session_token"})),
    "--permission": ("permission", frozenset({"session_token"})),
    "--feature": ("feature", frozenset({"session_token"})),
    "--plan": ("plan", frozenset({"session_token"})),
    "--azp": ("azp", frozenset({"session_token"})),
    "--v1": ("v1", frozenset({"session_token"})),
    "--scopes": ("scopes", frozenset({"m2m_token", "oauth_token", "api_key"})),
    "--claims": ("claims", frozenset({"m2m_token", "api_key"})),
    "--client-id": ("client_id", frozenset({"oauth_token"})),
    "--name": ("name", frozenset({"api_key"})),
    "--opaque": ("opaque", frozenset({"m2m_token", "oauth_token"})),
}
#: Lifetime when ``--expires-in`` is not given (``None``: never expires, as API keys by default).
_MINT_LIFETIME: Mapping[str, int | None] = {
    "session_token": 60,
    "m2m_token": 3600,
    "oauth_token": 3600,
    "api_key": None,
}


def _mint_kind(value: str) -> str:
    kind = _MINT_KINDS.get(value.strip().lower())
    if kind is None:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not one of session, m2m, oauth, api_key")
    return kind


def _mint_claims(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    from ._core.jsonstrict import StrictJSONError, loads_object

    try:
        return loads_object(text.encode())
    except StrictJSONError as exc:
        raise UsageError(f"--claims must be a JSON object ({exc})") from None


def _mint_checks(args: argparse.Namespace, kind: str) -> str:
    """Refuse options of other kinds; the subject (``sub``), checked against the kind."""
    for option, (attribute, kinds) in _MINT_ONLY.items():
        if kind not in kinds and getattr(args, attribute) not in (None, False, []):
            allowed = ", ".join(sorted(_MINT_NAME[k] for k in kinds))
            raise UsageError(f"{option} applies to --kind {allowed} only, not {_MINT_NAME[kind]}")
    subject = args.subject or ("mch_dev" if kind == "m2m_token" else "user_dev")
    # verify would refuse these (token-type-mismatch): mint makes the kind asked for.
    if kind == "m2m_token" and not subject.startswith("mch_"):
        raise UsageError("an M2M token's --subject is a machine id (mch_...)")
    if kind == "oauth_token" and subject.startswith("mch_"):
        raise UsageError("an OAuth access token acts for a user (--subject user_...), not a machine")
    return subject


def _cmd_mint(args: argparse.Namespace) -> int:
    from .testing import LocalIssuer

    kind: str = args.kind
    subject = _mint_checks(args, kind)
    claims = _mint_claims(args.claims)
    scopes = [name for value in args.scopes or () for name in value.replace(",", " ").split()]
    expires_in = args.expires_in if args.expires_in is not None else _MINT_LIFETIME[kind]
    jwt_expires_in = float(expires_in if expires_in is not None else 0)  # JWT kinds always have one
    key = load_key_file(Path(args.key_file))
    opaque = kind == "api_key" or args.opaque
    # Opaque tokens carry no iss: they are checked by the Backend API, not against an issuer.
    issuer_url = None if opaque else _mint_issuer(args)
    issuer = LocalIssuer(kid=dev_kid(key), azp=args.azp or DEV_AUTHORIZED_PARTY)
    issuer.key = key
    try:
        if kind == "session_token":
            token = issuer.mint(
                user_id=subject,
                org_id=args.org,
                org_role=args.role,
                permissions=args.permission or (),
                features=args.feature or (),
                plan=args.plan,
                expires_in=jwt_expires_in,
                version=1 if args.v1 else 2,
                iss=issuer_url,
            )
        elif kind == "m2m_token" and not opaque:
            token = issuer.mint_m2m(
                machine_id=subject, scopes=scopes, claims=claims, expires_in=jwt_expires_in, iss=issuer_url
            )
        elif kind == "oauth_token" and not opaque:
            token = issuer.mint_oauth(
                user_id=subject,
                client_id=args.client_id or DEV_CLIENT_ID,
                scopes=scopes,
                expires_in=jwt_expires_in,
                iss=issuer_url,
            )
        elif kind == "m2m_token":
            token = issuer.issue_m2m_token(
                machine_id=subject, scopes=scopes, claims=claims, expires_in=expires_in, self_contained=True
            )
        elif kind == "oauth_token":
            token = issuer.issue_oauth_token(
                user_id=subject,
                client_id=args.client_id or DEV_CLIENT_ID,
                scopes=scopes,
                expires_in=expires_in,
                self_contained=True,
            )
        else:
            token = issuer.issue_api_key(
                subject=subject,
                name=args.name or "dev key",
                scopes=scopes,
                claims=claims,
                expires_in=expires_in,
                self_contained=True,
            )
    except ValueError as exc:  # a v2 permission not shaped org:feature:permission; too long a token
        raise UsageError(str(exc)) from None
    _out(token)
    return EXIT_OK


# -- demo ------------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from . import _demo

    if args.examples is None:
        return _demo.run_in_process()
    return _demo.run_examples(Path(args.examples), allow_missing=args.allow_missing, timeout=args.timeout)


# -- webhook (clerkguard.webhooks; needs the "webhooks" extra for verify) ------------------------
#: Where ``webhook sign|verify`` read the secret unless ``--secret-env`` names another variable.
WEBHOOK_SECRET_ENV = "CLERK_WEBHOOK_SIGNING_SECRET"
#: Largest body ``webhook sign|verify`` read (more than any delivery clerkguard accepts).
MAX_WEBHOOK_BODY = 8 * 1024 * 1024


def _read_body(arg: str) -> bytes:
    """The raw body from a file, or stdin for ``-``; bytes exactly as stored."""
    try:
        if arg == "-":
            data: bytes = sys.stdin.buffer.read(MAX_WEBHOOK_BODY + 1)
        else:
            with open(arg, "rb") as f:
                data = f.read(MAX_WEBHOOK_BODY + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {arg}: {exc.strerror}") from None
    if len(data) > MAX_WEBHOOK_BODY:
        raise UsageError(f"the body is over {MAX_WEBHOOK_BODY // (1024 * 1024)} MiB")
    return data


def _webhook_secret(args: argparse.Namespace) -> str:
    value = os.environ.get(args.secret_env, "")
    if not value.strip():
        raise _Failure(f"error: set {args.secret_env} to the endpoint's whsec_ signing secret", EXIT_CONFIG)
    return value


def _cmd_webhook_sign(args: argparse.Namespace) -> int:
    from .testing import WebhookSigner

    body = _read_body(args.body)
    secret = _webhook_secret(args).replace(",", " ").split()[0]  # the first (current) secret signs
    try:
        signer = WebhookSigner(secret)
        headers = signer.headers(body, msg_id=args.id, timestamp=args.timestamp, prefix=args.prefix)
    except (ValueError, binascii.Error):
        raise _Failure(f"error: {args.secret_env} is not a whsec_ base64 secret", EXIT_CONFIG) from None
    headers.pop("content-type", None)
    if args.json:
        _out(json.dumps(headers, indent=2))
    else:
        for name, value in headers.items():
            _out(f"{name}: {value}")
    return EXIT_OK


def _parse_header_args(values: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header expects 'name: value', got {item[:40]!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _cmd_webhook_verify(args: argparse.Namespace) -> int:
    try:
        from .webhooks import WebhookVerifier
    except ImportError as exc:
        raise _Failure(f"error: {exc}", EXIT_CONFIG) from None

    body = _read_body(args.body)
    headers = _parse_header_args(args.header or [])
    if args.headers_file:
        try:
            loaded = json.loads(Path(args.headers_file).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--headers-file: cannot read a JSON object: {type(exc).__name__}") from None
        if not isinstance(loaded, dict):
            raise UsageError("--headers-file must hold a JSON object of header names to values")
        headers += [(str(k), str(v)) for k, v in loaded.items()]
    clock: Callable[[], float] | None = None
    if args.at == "now":
        pass
    elif args.at == "signed":
        # Judge a captured delivery at the moment it was signed (the window then always passes).
        stamp = next((v for k, v in headers if k.lower() in ("svix-timestamp", "webhook-timestamp")), "")
        if stamp.isascii() and stamp.isdigit():
            signed_at = float(stamp)
            clock = lambda: signed_at  # noqa: E731
    else:
        try:
            fixed = float(args.at)
        except ValueError:
            raise UsageError("--at takes now, signed, or Unix seconds") from None
        clock = lambda: fixed  # noqa: E731
    try:
        verifier = WebhookVerifier(
            env={WEBHOOK_SECRET_ENV: _webhook_secret(args)}, clock=clock, max_body=MAX_WEBHOOK_BODY
        )
    except ConfigurationError as exc:
        raise _Failure(f"error: {exc}", EXIT_CONFIG) from None
    try:
        event = verifier.verify(body, headers)
    except AuthError as error:
        _err(f"invalid: {error.reason}: {error.detail}")
        return EXIT_INVALID
    summary = {
        "id": event.id,
        "type": event.type,
        "timestamp": event.timestamp,
        "signed_at": _iso(event.timestamp),
        "instance_id": event.instance_id,
    }
    if args.json:
        _out(json.dumps({**summary, "payload": event.payload()} if args.payload else summary, indent=2))
    else:
        _out("valid webhook")
        _out(_table([(k, str(v)) for k, v in summary.items()]))
        if args.payload:
            _out(json.dumps(event.payload(), indent=2))
    return EXIT_OK


def _add_webhook_parser(sub: Any) -> None:
    secret_help = f"variable holding the whsec_ secret(s) ({WEBHOOK_SECRET_ENV}); never passed as an argument"
    webhook = sub.add_parser("webhook", help="sign a webhook body like Svix, or verify a captured delivery")
    actions = webhook.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")

    p = actions.add_parser("sign", help="print svix-* headers signing BODY (test a handler without Clerk)")
    p.add_argument("body", metavar="BODY", help="file with the exact body bytes, or - for stdin")
    p.add_argument("--id", help="message id (default: a random msg_...)")
    p.add_argument("--timestamp", type=int, help="Unix seconds (default: now)")
    p.add_argument("--prefix", choices=("svix", "webhook"), default="svix", help="header names (svix)")
    p.add_argument("--secret-env", default=WEBHOOK_SECRET_ENV, metavar="VAR", help=secret_help)
    p.add_argument("--json", action="store_true", help="print the headers as JSON")
    p.set_defaults(func=_cmd_webhook_sign)

    p = actions.add_parser("verify", help="verify a captured delivery: exit 0 valid, 1 refused")
    p.add_argument("body", metavar="BODY", help="file with the exact body bytes, or - for stdin")
    p.add_argument("-H", "--header", action="append", metavar="'NAME: VALUE'", help="a header, repeatable")
    p.add_argument("--headers-file", metavar="PATH", help="JSON object of the delivery's headers")
    p.add_argument(
        "--at", default="now", help="judge the timestamp at: now (default), signed (replay), or Unix seconds"
    )
    p.add_argument("--secret-env", default=WEBHOOK_SECRET_ENV, metavar="VAR", help=secret_help)
    p.add_argument("--payload", action="store_true", help="also print the verified payload")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_webhook_verify)


# -- parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = _Parser(
        prog="clerkguard",
        description="Verify, inspect and mint Clerk tokens (sessions, M2M, OAuth, API keys).",
        epilog="exit codes:\n" + "\n".join(f"  {c:<3} {m}" for c, m in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"clerkguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("verify", help="verify a token (session, M2M, OAuth, API key) as your app would")
    p.add_argument("token", metavar="TOKEN", help="the token, or - to read it from stdin")
    p.add_argument(
        "--accepts-token",
        action="append",
        metavar="KIND",
        help="kinds accepted, as the API's accepts_token: session_token (default), m2m_token, "
        "oauth_token, api_key, or any; repeatable or a comma list",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_config_options(p)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("decode", help="show what a token says (header, claims, kind) WITHOUT verifying")
    p.add_argument("token", metavar="TOKEN", help="the token, or - to read it from stdin")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("jwks", help="fetch the configured JWKS and explain each key")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_config_options(p)
    p.set_defaults(func=_cmd_jwks)

    p = sub.add_parser("dev-issuer", help="serve a local Clerk-like issuer on loopback until Ctrl-C")
    p.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    p.add_argument(
        "--key-file",
        metavar="PATH",
        help="private key PEM: reused if present, else created (0600); `mint` signs with it "
        "(default: a temporary file removed on exit)",
    )
    p.set_defaults(func=_cmd_dev_issuer)

    p = sub.add_parser("mint", help="make a token of any kind for a dev issuer")
    p.add_argument("--key-file", metavar="PATH", required=True, help="the dev issuer's --key-file")
    p.add_argument(
        "--kind",
        type=_mint_kind,
        default="session_token",
        metavar="{session,m2m,oauth,api_key}",
        help="what to make (session); m2m and oauth are JWTs unless --opaque, api_key is opaque",
    )
    p.add_argument(
        "--issuer", metavar="URL", help="iss of JWTs (default: CLERK_ISSUER or from CLERK_PUBLISHABLE_KEY)"
    )
    p.add_argument(
        "--subject",
        "--user",
        dest="subject",
        metavar="ID",
        help="sub: who the token is for (user_dev; m2m: mch_dev)",
    )
    p.add_argument(
        "--expires-in",
        type=int,
        metavar="S",
        help="lifetime; negative = expired (session 60, m2m/oauth 3600, api_key: never)",
    )
    session = p.add_argument_group("session tokens")
    session.add_argument("--org", metavar="ORG_ID", help="active organization id (its slug is always acme)")
    session.add_argument("--role", help="organization role, e.g. admin")
    session.add_argument(
        "--permission",
        action="append",
        metavar="PERM",
        help="org:feature:permission, repeatable (implies an organization)",
    )
    session.add_argument("--feature", action="append", metavar="FEATURE", help="feature, repeatable")
    session.add_argument("--plan", help="plan, e.g. pro")
    session.add_argument("--azp", help=f"authorized party ({DEV_AUTHORIZED_PARTY})")
    session.add_argument("--v1", action="store_true", help="a version 1 session token")
    machine = p.add_argument_group("machine tokens (m2m, oauth, api_key)")
    machine.add_argument(
        "--scopes",
        action="append",
        metavar="LIST",
        help="scopes, comma- or space-separated, repeatable (m2m: the machine ids it may call)",
    )
    machine.add_argument("--claims", metavar="JSON", help="m2m, api_key: custom claims, a JSON object")
    machine.add_argument("--client-id", help=f"oauth: the OAuth application's client id ({DEV_CLIENT_ID})")
    machine.add_argument("--name", help="api_key: the key's name (dev key)")
    machine.add_argument(
        "--opaque",
        action="store_true",
        help="m2m, oauth: an opaque mt_/oat_ token (verified by the dev issuer's Backend API fake)",
    )
    p.set_defaults(func=_cmd_mint)

    p = sub.add_parser("demo", help="verification end to end: in-process, or across the example apps")
    p.add_argument(
        "--examples",
        metavar="DIR",
        help="run the example apps in DIR under real servers and compare their answers",
    )
    p.add_argument("--allow-missing", action="store_true", help="skip examples that don't exist yet")
    p.add_argument("--timeout", type=float, default=45.0, help="seconds allowed for the servers to start")
    p.set_defaults(func=_cmd_demo)

    _add_webhook_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clerkguard`` console script and ``python -m clerkguard``."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as exc:
        _err(f"clerkguard {args.command}: error: {exc}")
        return EXIT_USAGE
    except _Failure as failure:
        _err(str(failure))
        return failure.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `clerkguard ... | head`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
