"""The shared table on Django: ``examples/django_project``'s function views through ``django.test.Client``.

Django's settings are process-wide (configured once, in ``tests/conftest.py``,
to the example project's), so each harness carries its own ``ClerkAuth``
into its requests with ``override_settings(CLERK_AUTH=...)``, which is how
clerkguard's Django integration finds the project's ``ClerkAuth``.
"""

from __future__ import annotations

import json
from typing import Any

from django.test import Client
from django.test.utils import override_settings

from clerkguard import ClerkAuth

from . import harness
from .harness import Result


def wsgi_meta(headers: harness.Headers | None, cookies: dict[str, str] | None) -> dict[str, str]:
    """Request headers as WSGI environ keys, repeated names folded with "," as gunicorn folds them."""
    meta: dict[str, str] = {}
    for name, value in harness.header_list(headers, cookies):
        key = name.upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        meta[key] = f"{meta[key]},{value}" if key in meta else value
    return meta


def result_of(response: Any) -> Result:
    """A Django ``HttpResponse`` as a framework-neutral :class:`Result`."""
    return Result(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        json=json.loads(response.content) if response.content else None,
    )


class DjangoHarness:
    """:class:`~tests.adapters.harness.Harness` for the sync views (``/``)."""

    name = "django"
    #: Where the variant's routes are mounted in ``examples/django_project/urls.py``.
    prefix = ""

    def __init__(self, auth: ClerkAuth) -> None:
        self.auth = auth
        self.client = Client()  # its cookie jar stays empty: cookies go in our Cookie header

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: harness.Headers | None = None,
        cookies: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Result:
        """One request through Django's test client (a WSGI environ, as under gunicorn)."""
        with override_settings(
            CLERK_AUTH=self.auth, CLERK_WEBHOOK_SIGNING_SECRET=list(harness.WEBHOOK_SECRETS)
        ):
            response = self.client.generic(
                method, self.prefix + path, data=body or b"", **wsgi_meta(headers, cookies)
            )
        return result_of(response)


def make_harness(auth: ClerkAuth) -> DjangoHarness:
    """The Django (sync views) harness on ``auth``."""
    return DjangoHarness(auth)
