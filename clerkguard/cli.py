"""The ``clerkguard`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import AuthError
from .testing import MISSING, LocalIssuer

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    with LocalIssuer() as issuer:
        auth = issuer.auth()
        cases = [
            ("good token", issuer.mint(org_role="admin")),
            ("expired", issuer.mint(issued_at=issuer.clock() - 3600)),
            ("forged signature", issuer.mint(key=LocalIssuer().key)),
            ("no subject", issuer.mint(sub=MISSING)),
        ]
        print(f"local issuer {issuer.issuer}  (JWKS {issuer.jwks_uri})")
        for label, token in cases:
            try:
                session = auth.verify(token)
                print(f"  {label:<18} 200  {session!r}")
            except AuthError as error:
                print(f"  {label:<18} {error.status}  {error.reason}")
        auth.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clerkguard`` console script."""
    parser = argparse.ArgumentParser(prog="clerkguard", description="Clerk session tokens, verified.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="verify tokens from a local issuer end to end").set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
