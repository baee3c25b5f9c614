"""The shared table on Django REST framework: ``/drf/...`` of ``examples/django_project``.

Authentication, permissions and error bodies are ``clerkguard.drf``'s, as
configured in the example's ``REST_FRAMEWORK`` settings.
"""

from __future__ import annotations

from clerkguard import ClerkAuth

from .harness_django import DjangoHarness


class DRFHarness(DjangoHarness):
    """:class:`~tests.adapters.harness.Harness` for the DRF views."""

    name = "drf"
    prefix = "/drf"


def make_harness(auth: ClerkAuth) -> DRFHarness:
    """The DRF harness on ``auth``."""
    return DRFHarness(auth)
