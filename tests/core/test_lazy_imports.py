"""``import clerkguard`` loads no network, event-loop or key stack up front.

httpx (with click and rich when installed), httpcore, asyncio, ssl and
joserfc's key modules (with cryptography) were most of the import time of
``import clerkguard``; a ``jwt_key`` configuration never fetches, ``clerkguard
decode`` never verifies and a sync app never runs an event loop. They load
with the first fetch, on an event loop, or with the first key. Each check runs
in a fresh interpreter, where ``sys.modules`` shows what was loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clerkguard.testing import LocalIssuer

LAZY = ("httpx", "httpcore", "asyncio", "ssl", "joserfc.jwk", "cryptography")


def _loaded_after(code: str) -> dict[str, bool]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {LAZY!r}}}))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, bool] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_import_clerkguard_loads_none_of_them() -> None:
    assert _loaded_after("import clerkguard") == dict.fromkeys(LAZY, False)


def test_clerkguard_decode_loads_no_fetch_stack() -> None:
    # An unsigned but well-formed token: decode shows it without verifying.
    code = (
        "import base64, contextlib, io, json\n"
        "from clerkguard.cli import main\n"
        "def seg(d): return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b'=').decode()\n"
        "token = seg({'alg': 'RS256', 'kid': 'k', 'typ': 'JWT'}) + '.' + seg({'sub': 'user_1'}) + '.c2ln'\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    status = main(['decode', token])\n"
        "assert status == 0 and 'user_1' in out.getvalue(), (status, out.getvalue())\n"
    )
    loaded = _loaded_after(code)
    assert not loaded["httpx"]
    assert not loaded["httpcore"]
    assert not loaded["asyncio"]


@pytest.mark.parametrize("verify", ["verify", "averify"])
def test_the_first_fetch_loads_the_http_stack_and_verification_works(verify: str) -> None:
    with LocalIssuer() as issuer:
        env = json.dumps(issuer.env())
        token = issuer.mint()
        call = (
            "auth.verify(token)" if verify == "verify" else "__import__('asyncio').run(auth.averify(token))"
        )
        code = (
            "import json\n"
            "from clerkguard import ClerkAuth\n"
            f"auth = ClerkAuth(env=json.loads({env!r}))\n"
            f"token = {token!r}\n"
            f"session = {call}\n"
            "assert session.user_id, session\n"
        )
        loaded = _loaded_after(code)
    assert loaded["httpx"]
    assert loaded["joserfc.jwk"]
    assert loaded["cryptography"]


def test_a_pem_key_loads_keys_but_no_http_stack() -> None:
    with LocalIssuer() as issuer:
        pem = issuer.public_pem()
        token = issuer.mint()
        code = (
            "from clerkguard import ClerkAuth\n"
            f"auth = ClerkAuth(jwt_key={pem!r}, issuer={issuer.issuer!r}, env={{}})\n"
            f"assert auth.verify({token!r}).user_id\n"
        )
        loaded = _loaded_after(code)
    assert loaded["joserfc.jwk"]
    assert not loaded["httpx"]
    assert not loaded["asyncio"]
