"""A stand-in for ``examples/flask_app.py`` that tests the demo runner on its own.

A bare WSGI app (gunicorn serves any WSGI callable named ``app``) guarded
through clerkguard's public adapter API, configured only from ``CLERK_*``
variables like the real examples. Environment switches make it misbehave:
``FAKE_BROKEN`` (answers 200 to everything), ``FAKE_SLOW_START`` (hangs at
import), ``FAKE_CRASH`` (fails at import).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any

from clerkguard import AuthError, ClerkAuth
from clerkguard.adapters import Adapter, Guard, GuardOptions
from clerkguard.rules import has_permission, has_role

if os.environ.get("FAKE_CRASH"):
    raise RuntimeError("fake example failed to import")
if os.environ.get("FAKE_SLOW_START"):
    time.sleep(120)

Environ = dict[str, Any]


class WSGIAdapter(Adapter[Environ]):
    """Headers and cookies straight from the WSGI environ."""

    def header(self, request: Environ, name: str) -> str | None:
        return request.get("HTTP_" + name.upper().replace("-", "_"))

    def cookie(self, request: Environ, name: str) -> str | None:
        morsel = SimpleCookie(request.get("HTTP_COOKIE", "")).get(name)
        return morsel.value if morsel is not None else None

    def method(self, request: Environ) -> str:
        return str(request["REQUEST_METHOD"])


adapter = WSGIAdapter(ClerkAuth())
GUARDS = {
    "/protected": Guard(adapter, GuardOptions()),
    "/admin": Guard(adapter, GuardOptions(rules=(has_role("admin"),))),
    "/perm": Guard(adapter, GuardOptions(authorize=has_permission("org:reports:read"))),
}


def app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
    guard = GUARDS.get(environ["PATH_INFO"])
    headers: dict[str, str] = {}
    if guard is None:
        status, body = "404 Not Found", {"error": "not_found"}
    elif os.environ.get("FAKE_BROKEN"):
        status, body = "200 OK", {"user_id": None}
    else:
        try:
            session = guard.check(environ)
            status, body = "200 OK", {"user_id": session.user_id if session else None}
        except AuthError as error:
            status, body, headers = f"{error.status} Denied", error.to_dict(), error.headers()
    start_response(status, [("Content-Type", "application/json"), *headers.items()])
    return [json.dumps(body).encode()]
