"""Memory held by the verified-token cache, measured with tracemalloc.

Fills one ``ClerkAuth``'s cache with distinct tokens of a given shape and
reports the traced memory it keeps (the instance is built and its key loaded
before the first snapshot, so only cached entries are counted).

    .venv/bin/python benchmarks/cache_memory.py            # every shape, 10 000 tokens
    .venv/bin/python benchmarks/cache_memory.py -n 2000    # fewer tokens

Shapes: ``clerk`` (a ~1 KB Clerk session token), ``big-string`` (one long
custom claim, token just under 8 KiB), ``many-claims`` (hundreds of tiny
custom claims, token just under 8 KiB: the costliest decoded shape per byte).
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

from clerkguard import ClerkAuth
from clerkguard.testing import LocalIssuer

MAX_TOKEN = 8192


def _fill(issuer: LocalIssuer, extra: Callable[[int], dict[str, Any]], target: int) -> dict[str, Any]:
    """Extra claims that bring a token close to ``target`` characters (never over 8 KiB)."""
    n = 1
    while len(issuer.mint(**extra(n * 2))) <= target:
        n *= 2
    low, high = n, n * 2
    while high - low > 1:
        mid = (low + high) // 2
        if len(issuer.mint(**extra(mid))) <= target:
            low = mid
        else:
            high = mid
    return extra(low)


def shapes(issuer: LocalIssuer) -> dict[str, dict[str, Any]]:
    target = MAX_TOKEN - 64  # room for the random jti/sid
    return {
        "clerk": {
            "org_id": "org_2exampleorganizationid00",
            "org_role": "admin",
            "permissions": ["org:a:read"],
        },
        "big-string": _fill(issuer, lambda n: {"note": "x" * n}, target),
        "many-claims": _fill(issuer, lambda n: {"c": {f"{i:x}": 0 for i in range(n)}}, target),
    }


def measure(
    issuer: LocalIssuer, extra: dict[str, Any], count: int, read_claims: bool, **options: Any
) -> tuple[int, int, int]:
    """(traced bytes kept after ``count`` tokens, entries kept, longest token length)."""
    tokens = [issuer.mint(expires_in=3600, **extra) for _ in range(count)]
    auth = ClerkAuth(jwt_key=issuer.public_pem(), issuer=issuer.issuer, env={}, **options)
    auth.verify(tokens[0])  # warm: header cache, derived-claim caches
    auth._cache.clear()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for token in tokens:
        # A new string, as a request would bring: the cache keeps it alive.
        session = auth.verify((token + " ")[:-1])
        if read_claims:  # a handler reading .claims adds the frozen copy
            session.claims  # noqa: B018
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, len(auth._cache), max(len(t) for t in tokens)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10_000, help="distinct tokens per shape (default 10000)")
    args = parser.parse_args()
    issuer = LocalIssuer()
    budgets = {"no byte cap": 2**62, "default (64 MiB)": 64 * 2**20}
    head = f"{'shape':<12} {'chars':>5} {'.claims':>7} {'token_cache_bytes':<17} {'kept':>6}"
    head += f" {'held':>10} {'per entry':>10}"
    print(f"{args.n} distinct tokens verified per row, token_cache_size=10000\n{head}")
    for name, extra in shapes(issuer).items():
        for read_claims in (False, True):
            for label, budget in budgets.items():
                held, kept, longest = measure(issuer, extra, args.n, read_claims, token_cache_bytes=budget)
                per = held / max(kept, 1) / 1024
                print(
                    f"{name:<12} {longest:>5} {'read' if read_claims else '-':>7} {label:<17} {kept:>6}"
                    f" {held / 2**20:>6.1f} MiB {per:>6.1f} KiB"
                )


if __name__ == "__main__":
    main()
