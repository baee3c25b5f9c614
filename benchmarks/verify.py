"""Verification benchmark: clerkguard against the floor and its peers (design section 8).

Run ``python benchmarks/verify.py`` (or ``make bench``). Every row verifies the
same Clerk-shaped tokens: RS256 with a 2048-bit key, header with ``cat`` and
``kid``, v2 payload with organization claims, minted by
:class:`clerkguard.testing.LocalIssuer`. Rows:

* **floor**: split, base64url-decode the three segments, ``json.loads`` header
  and payload, one RSA PKCS#1 v1.5 / SHA-256 verify with ``cryptography``:
  what any correct verifier must at least do;
* **clerkguard cold**: a token never seen before (each pre-minted token is
  verified once per round, by a fresh ``ClerkAuth`` whose keys are already
  fetched: the JWKS request is not timed);
* **clerkguard repeated**: the same token string again (served from the
  verified-token cache, ``exp`` re-checked);
* ``averify`` variants of both, awaited inside one running event loop;
* **peers** (PyJWT, joserfc, Authlib, clerk-backend-api with ``jwt_key``),
  each checked once to accept the genuine token and reject a tampered, an
  expired and (where it checks ``iss``) a foreign-issuer token.

Rows are measured in interleaved rounds (the machine may be busy, so every
row sees the same noise), in batches timed with ``time.perf_counter_ns`` with
the garbage collector paused; the table shows the median and p90 of per-call
times over all batches, and the ratio to the floor of the same run.

Targets (design section 8) are reported, not asserted: the exit status is 0
unless ``--check`` is given and a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cryptography
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from clerkguard import AuthError, ClerkAuth
from clerkguard.testing import LocalIssuer, b64url

#: Cold verify must cost at most this multiple of the floor.
COLD_TARGET = 1.25
#: A repeated token must cost at most this multiple of the floor.
REPEAT_TARGET = 0.1

# Clerk-shaped organization claims: v2 `o` with a permission bitmask, `fea`, `pla`.
_TOKEN_OPTIONS: dict[str, Any] = {
    "user_id": "user_2benchmarkuser00000000000",
    "org_id": "org_2exampleorganizationid00",
    "org_role": "admin",
    "org_slug": "acme",
    "permissions": ["org:dashboard:manage", "org:dashboard:read", "org:teams:read"],
    "features": ["dashboard", "teams"],
    "plan": "pro",
    # Longer than Clerk's 60 s so no token expires during a long run; the
    # lifetime does not change the work a verifier does.
    "expires_in": 3600,
}

Verify = Callable[[str], object]
AsyncVerify = Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class Settings:
    """How much work one run does."""

    tokens: int
    rounds: int
    batch: int
    repeat_calls: int


@dataclass
class Row:
    """One line of the table: a measured verifier and its target, if any."""

    name: str
    #: One round: returns per-call microseconds, one value per timed batch.
    measure: Callable[[], list[float]]
    target: float | None = None
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median per-call microseconds."""
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        """90th percentile of the per-call microseconds."""
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=10, method="inclusive")[-1]


# -- timing harness -----------------------------------------------------------------
def _batches(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def time_sync(verify: Verify, batches: list[Sequence[str]]) -> list[float]:
    """Per-call µs of ``verify`` for each batch (GC paused while timing)."""
    clock = time.perf_counter_ns
    out: list[float] = []
    gc.disable()
    try:
        for batch in batches:
            start = clock()
            for token in batch:
                verify(token)
            out.append((clock() - start) / len(batch) / 1000)
    finally:
        gc.enable()
    return out


async def time_async(verify: AsyncVerify, batches: list[Sequence[str]]) -> list[float]:
    """Per-call µs of ``await verify(token)`` for each batch, inside the running loop."""
    clock = time.perf_counter_ns
    out: list[float] = []
    gc.disable()
    try:
        for batch in batches:
            start = clock()
            for token in batch:
                await verify(token)
            out.append((clock() - start) / len(batch) / 1000)
    finally:
        gc.enable()
    return out


# -- the floor ------------------------------------------------------------------------
def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def make_floor(issuer: LocalIssuer) -> Verify:
    """The least any verifier must do: decode, parse, one RSA verify."""
    public_key = issuer.key.public_key
    pkcs1v15 = padding.PKCS1v15()
    sha256 = hashes.SHA256()

    def floor(token: str) -> object:
        header_seg, payload_seg, sig_seg = token.split(".")
        json.loads(_b64decode(header_seg))
        payload = json.loads(_b64decode(payload_seg))
        signature = _b64decode(sig_seg)
        public_key.verify(signature, f"{header_seg}.{payload_seg}".encode(), pkcs1v15, sha256)
        return payload

    return floor


# -- peers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Peer:
    """A third-party verifier configured like clerkguard (key loaded once)."""

    name: str
    verify: Verify
    checks_issuer: bool = True


def make_peers(issuer: LocalIssuer, skew: int) -> tuple[list[Peer], list[str]]:
    """Build every installed peer; returns (peers, names of the missing ones)."""
    peers: list[Peer] = []
    missing: list[str] = []
    public_pem = issuer.public_pem()
    iss = issuer.issuer
    public_jwk = issuer.jwks()["keys"][0]

    try:
        import jwt as pyjwt
    except ImportError:
        missing.append("PyJWT")
    else:
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        loaded = load_pem_public_key(public_pem.encode())
        assert isinstance(loaded, RSAPublicKey)

        def pyjwt_verify(token: str) -> object:
            return pyjwt.decode(
                token,
                loaded,
                algorithms=["RS256"],
                issuer=iss,
                leeway=skew,
                options={"require": ["exp", "iat", "iss", "sub", "nbf"]},
            )

        peers.append(Peer("PyJWT jwt.decode", pyjwt_verify))

    try:
        from joserfc import jwt as jose_jwt
        from joserfc.jwk import RSAKey
        from joserfc.jws import JWSRegistry
        from joserfc.registry import HeaderParameter
    except ImportError:
        missing.append("joserfc")
    else:
        jose_key = RSAKey.import_key(public_jwk)
        # joserfc's strict header check rejects Clerk's `cat` header unless registered.
        registry = JWSRegistry(
            header_registry={"cat": HeaderParameter("Clerk token category", "str")},
            algorithms=["RS256"],
        )
        claims_registry = jose_jwt.JWTClaimsRegistry(
            leeway=skew,
            iss={"essential": True, "value": iss},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )

        def joserfc_verify(token: str) -> object:
            decoded = jose_jwt.decode(token, jose_key, algorithms=["RS256"], registry=registry)
            claims_registry.validate(decoded.claims)
            return decoded.claims

        peers.append(Peer("joserfc jwt.decode + claims", joserfc_verify))

    try:
        # authlib.jose announces its move to joserfc with a warning that
        # authlib.deprecate forces to "always" when imported: import that first.
        from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AuthlibDeprecationWarning)
            from authlib.jose import JsonWebKey, JsonWebToken  # type: ignore[import-untyped]
    except ImportError:
        missing.append("Authlib")
    else:
        authlib_jwt = JsonWebToken(["RS256"])
        authlib_key = JsonWebKey.import_key(public_jwk)
        options = {
            "iss": {"essential": True, "value": iss},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
        }

        def authlib_verify(token: str) -> object:
            claims = authlib_jwt.decode(token, authlib_key, claims_options=options)
            claims.validate(leeway=skew)
            return claims

        peers.append(Peer("Authlib JsonWebToken.decode", authlib_verify))

    try:
        from clerk_backend_api.security import verify_token
        from clerk_backend_api.security.types import VerifyTokenOptions
    except ImportError:
        missing.append("clerk-backend-api")
    else:
        clerk_options = VerifyTokenOptions(
            jwt_key=public_pem, authorized_parties=[issuer.azp], clock_skew_in_ms=skew * 1000
        )

        def clerk_verify(token: str) -> object:
            return verify_token(token, clerk_options)

        # clerk-backend-api does not check `iss` (it trusts the key alone).
        peers.append(Peer("clerk-backend-api (jwt_key)", clerk_verify, checks_issuer=False))
    return peers, missing


# -- sanity: every row really verifies ---------------------------------------------------
def tampered(token: str) -> str:
    """``token`` with another subject in its payload and the original signature."""
    header_seg, payload_seg, sig_seg = token.split(".")
    claims = json.loads(_b64decode(payload_seg))
    claims["sub"] = "user_attacker"
    forged = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header_seg}.{forged}.{sig_seg}"


def _subject(result: object) -> object:
    if isinstance(result, dict):
        return result.get("sub")
    user_id = getattr(result, "user_id", None)
    if user_id is not None:
        return user_id
    get = getattr(result, "get", None)
    return get("sub") if callable(get) else None


def check_really_verifies(
    name: str,
    verify: Verify,
    good: str,
    bad: dict[str, str],
    errors: tuple[type[Exception], ...] = (Exception,),  # peers each raise their own types
) -> None:
    """Fail loudly unless ``verify`` accepts ``good`` and rejects every ``bad`` token."""
    if _subject(verify(good)) != _TOKEN_OPTIONS["user_id"]:
        raise SystemExit(f"{name}: accepted the genuine token but returned the wrong subject")
    for label, token in bad.items():
        try:
            verify(token)
        except errors:
            continue
        raise SystemExit(f"{name}: accepted a {label} token; it does not really verify")


# -- rows ---------------------------------------------------------------------------------
def build_rows(
    issuer: LocalIssuer, tokens: list[str], settings: Settings, peers: list[Peer], skew: int
) -> list[Row]:
    """Every row of the table, each able to measure one round."""
    warm_token = issuer.mint(**_TOKEN_OPTIONS)
    cold_batches = _batches(tokens, settings.batch)
    repeat_batches = _batches([tokens[0]] * settings.repeat_calls, 200)

    def fresh_auth() -> ClerkAuth:
        # A new instance has an empty verified-token cache; one verify fetches
        # the keys (untimed) so that only verification is measured.
        auth = issuer.auth(clock_skew=skew)
        auth.verify(warm_token)
        return auth

    def cold_sync() -> list[float]:
        with fresh_auth() as auth:
            return time_sync(auth.verify, cold_batches)

    def cold_async() -> list[float]:
        async def run() -> list[float]:
            auth = issuer.auth(clock_skew=skew)
            try:
                await auth.averify(warm_token)
                return await time_async(auth.averify, cold_batches)
            finally:
                await auth.aclose()

        return asyncio.run(run())

    # JWT M2M tokens, as many as the session tokens: verified locally, same keys.
    m2m_batches = _batches([issuer.mint_m2m(scopes=["mch_b"]) for _ in tokens], settings.batch)

    def cold_m2m() -> list[float]:
        with fresh_auth() as auth:
            return time_sync(lambda token: auth.verify(token, accepts_token="m2m_token"), m2m_batches)

    repeat_auth = fresh_auth()
    repeat_auth.verify(tokens[0])

    def repeated_sync() -> list[float]:
        return time_sync(repeat_auth.verify, repeat_batches)

    def repeated_async() -> list[float]:
        async def run() -> list[float]:
            await repeat_auth.averify(tokens[0])
            return await time_async(repeat_auth.averify, repeat_batches)

        return asyncio.run(run())

    floor = make_floor(issuer)
    rows = [
        Row("floor: split+b64+json+RSA", lambda: time_sync(floor, cold_batches)),
        Row("clerkguard verify, cold", cold_sync, COLD_TARGET),
        Row("clerkguard verify, repeated", repeated_sync, REPEAT_TARGET),
        Row("clerkguard averify, cold", cold_async, COLD_TARGET),
        Row("clerkguard averify, repeated", repeated_async, REPEAT_TARGET),
        Row("clerkguard verify, JWT M2M, cold", cold_m2m, COLD_TARGET),
    ]
    for peer in peers:
        rows.append(Row(peer.name, _peer_measure(peer.verify, cold_batches)))
    return rows


def _peer_measure(verify: Verify, batches: list[Sequence[str]]) -> Callable[[], list[float]]:
    return lambda: time_sync(verify, batches)


def run_rounds(rows: list[Row], rounds: int) -> None:
    """Measure every row once per round, rotating the order between rounds."""
    for r in range(rounds):
        shift = r % len(rows)
        for row in rows[shift:] + rows[:shift]:
            row.samples.extend(row.measure())
            gc.collect()


# -- report ------------------------------------------------------------------------------
def render(rows: list[Row]) -> tuple[str, bool]:
    """The result table, and whether every target was met."""
    floor = rows[0].median
    lines = [f"{'name':<32} {'median µs':>10} {'p90 µs':>9} {'x floor':>8} {'target':>8}  result"]
    all_met = True
    for row in rows:
        ratio = row.median / floor
        if row.target is None:
            target, verdict = "", ""
        else:
            met = ratio <= row.target
            all_met = all_met and met
            target, verdict = f"<={row.target:g}", "PASS" if met else "MISS"
        line = f"{row.name:<32} {row.median:>10.2f} {row.p90:>9.2f} {ratio:>8.3f} {target:>8}  {verdict}"
        lines.append(line.rstrip())
    return "\n".join(lines), all_met


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a ~10 s run with fewer tokens and rounds")
    parser.add_argument("--no-peers", action="store_true", help="skip PyJWT, joserfc, Authlib, Clerk SDK")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--tokens", type=int, help="distinct tokens per round (default 4000, quick 1000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 11, quick 7)")
    args = parser.parse_args(argv)
    for name in ("tokens", "rounds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; see the module docstring."""
    args = parse_args(argv)
    tokens_n = args.tokens or (1000 if args.quick else 4000)
    settings = Settings(
        tokens=tokens_n,
        rounds=args.rounds or (7 if args.quick else 11),
        # Short batches (~0.5 ms): on a busy machine most of them run without
        # being preempted, so the median stays close to the undisturbed cost.
        batch=10,
        repeat_calls=4000 if args.quick else 20000,
    )
    skew = 5
    with LocalIssuer() as issuer:
        started = time.perf_counter()
        tokens = [issuer.mint(**_TOKEN_OPTIONS) for _ in range(settings.tokens)]
        minted = time.perf_counter() - started

        now = int(time.time())
        bad = {
            "tampered": tampered(tokens[0]),
            "expired": issuer.mint(**{**_TOKEN_OPTIONS, "issued_at": now - 7200, "expires_in": 60}),
        }
        foreign = issuer.mint(**_TOKEN_OPTIONS, iss="https://clerk.attacker.example")

        peers, missing = ([], []) if args.no_peers else make_peers(issuer, skew)
        floor = make_floor(issuer)
        check_really_verifies("floor", floor, tokens[0], {"tampered": bad["tampered"]}, (InvalidSignature,))
        with issuer.auth(clock_skew=skew) as auth:
            check_really_verifies(
                "clerkguard", auth.verify, tokens[0], {**bad, "foreign-issuer": foreign}, (AuthError,)
            )
        for peer in peers:
            peer_bad = {**bad, "foreign-issuer": foreign} if peer.checks_issuer else bad
            check_really_verifies(peer.name, peer.verify, tokens[0], peer_bad)

        rows = build_rows(issuer, tokens, settings, peers, skew)
        run_rounds(rows, settings.rounds)
        elapsed = time.perf_counter() - started

    print(
        f"clerkguard verification benchmark: RS256-2048 Clerk session tokens (v2, org claims), "
        f"{settings.tokens} distinct x {settings.rounds} rounds"
    )
    print(
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}; "
        f"minting {minted:.1f} s, total {elapsed:.1f} s"
    )
    table, all_met = render(rows)
    print(table)
    if missing:
        print(f"peers not installed (pip install -e '.[bench]'): {', '.join(missing)}")
    print(f"targets: cold <= {COLD_TARGET:g}x floor, repeated <= {REPEAT_TARGET:g}x floor: ", end="")
    print("all met" if all_met else "MISSED")
    return 1 if args.check and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
