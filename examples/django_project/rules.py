"""The authorization callbacks and helpers the example's routes use (shared by the three variants)."""

from __future__ import annotations

import asyncio
from typing import Any

from clerkguard import Credential, Session, TokenType

#: The only user ``/async-authorize`` lets through.
ALLOWED_USER = "user_allowed"
#: What services may call ``/machine`` and ``/scoped`` with (Clerk's names).
MACHINE_TOKENS: list[TokenType] = ["m2m_token", "oauth_token", "api_key"]


def who(credential: Credential) -> dict[str, Any]:
    """Which kind of credential reached the view, and for whom."""
    if credential.token_type == "session_token":  # type checkers narrow to Session here
        return {"token_type": "session_token", "subject": credential.user_id}
    return {"token_type": credential.token_type, "subject": credential.subject}


async def allow_one_user(session: Session, request: Any) -> bool:
    """An async ``authorize`` (it could await a database); sync views bridge it with asgiref."""
    await asyncio.sleep(0)
    return session.user_id == ALLOWED_USER


def crashing_rule(session: Session, request: Any) -> bool:
    """A buggy rule: clerkguard answers 403 ``authorization-error``, never 500."""
    raise RuntimeError("bug in the rule")


def truthy_rule(session: Session, request: Any) -> Any:
    """Returns ``1``: only exactly ``True`` allows, so this denies."""
    return 1


def got_request_of(request_type: type) -> Any:
    """An ``authorize`` allowing only when called as ``authorize(session, <request_type>)``."""

    def authorize(session: Session, request: object, /) -> bool:
        return isinstance(session, Session) and isinstance(request, request_type)

    return authorize
