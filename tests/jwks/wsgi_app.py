"""The WSGI app of the ``gunicorn --preload`` test (``test_processes.py``).

One module-level :class:`~clerkguard.ClerkAuth`, configured from the
environment (``CLERK_JWKS_URI``, ``CLERK_ISSUER``) and warmed at import time,
that is in the gunicorn master before it forks its workers. Each answer says
which worker (pid) gave it and how many fetches that worker's keyring made.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from clerkguard import AuthError, ClerkAuth

# cooldown 0: a rotated kid is fetched at once (the test rotates keys to make workers refetch).
auth = ClerkAuth(jwks_cooldown=0, http_timeout=5)
auth.keyring.refresh_sync()  # warm in the master: workers are forked with these keys


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Verify the Bearer token; ``?hold=<seconds>`` keeps this worker busy (to reach both)."""
    hold = parse_qs(environ.get("QUERY_STRING", "")).get("hold", ["0"])[0]
    time.sleep(min(float(hold), 1.0))
    token = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
    body: dict[str, Any]
    try:
        body = {"user": auth.verify(token).user_id}
        status = "200 OK"
    except AuthError as exc:
        body = {"reason": exc.reason}
        status = f"{exc.status} Denied"
    body.update(pid=os.getpid(), fetches=auth.stats.fetches)
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
