"""One type for a credential of any kind, and one rule for scopes, whatever the kind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from clerkguard import ClerkAuth, Credential, MachineCredential, Session
from clerkguard.rules import has_role, has_scope, rules_from
from clerkguard.testing import LocalIssuer

ROOT = Path(__file__).resolve().parents[2]


def test_credential_is_the_union_of_both_results(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    session = auth.verify(issuer.mint(), accepts_token="any")
    machine = auth.verify(issuer.mint_oauth(scopes=["orders:read"]), accepts_token="any")
    assert isinstance(session, Session)
    assert isinstance(machine, MachineCredential)
    for credential in (session, machine):
        assert isinstance(credential, Credential)  # a real union at run time too
    assert (session.token_type, machine.token_type) == ("session_token", "oauth_token")


def test_sessions_have_no_scopes(issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]) -> None:
    session = make_auth().verify(issuer.mint(org_role="admin"))
    assert session.has(role="admin")
    assert not session.has(scope="orders:read")
    assert not session.has(role="admin", scope="orders:read")  # every condition must hold


def test_has_scope_serves_every_kind(issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]) -> None:
    auth = make_auth()
    rule = has_scope("orders:read")
    assert repr(rule) == "has_scope('orders:read')"
    granted = [
        auth.verify(issuer.mint_m2m(scopes=["orders:read"]), accepts_token="m2m_token"),
        auth.verify(issuer.mint_oauth(scopes=["orders:read", "profile"]), accepts_token="oauth_token"),
        auth.verify(issuer.issue_api_key(scopes=["orders:read"]), accepts_token="api_key"),
    ]
    for credential in granted:
        assert rule(credential, None) is True
    refused = [
        auth.verify(issuer.mint_oauth(scopes=["orders:write"]), accepts_token="oauth_token"),
        auth.verify(issuer.issue_m2m_token(scopes=[]), accepts_token="m2m_token"),
        auth.verify(issuer.mint(), accepts_token="session_token"),
    ]
    for credential in refused:
        assert rule(credential, None) is False
    # Rules written for sessions deny machine credentials, they never crash on them.
    assert has_role("admin")(granted[0], None) is False


def test_the_scope_shorthand_builds_the_rule() -> None:
    assert [repr(rule) for rule in rules_from(role="admin", scope="orders:read")] == [
        "has_role('admin')",
        "has_scope('orders:read')",
    ]


def test_type_checkers_narrow_a_credential_on_token_type(tmp_path: Path) -> None:
    # The documented way to tell the kinds apart must type-check under --strict,
    # and reading a machine-only attribute without narrowing must not.
    source = textwrap.dedent(
        """
        from clerkguard import Credential

        def who(credential: Credential) -> str:
            if credential.token_type == "session_token":
                return credential.session_id
            return credential.subject

        def unnarrowed(credential: Credential) -> str:
            return credential.subject
        """
    )
    (tmp_path / "snippet.py").write_text(source)
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(tmp_path / "snippet.py")]
    checked = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, checked.stdout
    assert "snippet.py:10:" in errors[0]
    assert 'Item "Session" of "Session | MachineCredential" has no attribute "subject"' in errors[0]
