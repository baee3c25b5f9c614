"""Options, environment defaults and publishable-key parsing.

Every option of [`ClerkAuth`][clerkguard.ClerkAuth] may come from the environment
(``CLERK_*``), mirroring Mastra's ``MastraAuthClerk``. Validation happens
once, at construction, and names the option and its variable on failure;
secrets are never echoed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = ["ENV_VARS", "PublishableKey", "parse_publishable_key", "safe_url", "validate_url"]

ENV_VARS: Mapping[str, str] = {
    "publishable_key": "CLERK_PUBLISHABLE_KEY",
    "secret_key": "CLERK_SECRET_KEY",
    "jwks_uri": "CLERK_JWKS_URI",
    "jwt_key": "CLERK_JWT_KEY",
    "api_url": "CLERK_API_URL",
    "issuer": "CLERK_ISSUER",
    "authorized_parties": "CLERK_AUTHORIZED_PARTIES",
    "machine_secret_key": "CLERK_MACHINE_SECRET_KEY",
    "organization_id": "CLERK_ORGANIZATION_ID",
    "organization_slug": "CLERK_ORGANIZATION_SLUG",
}
"""Option name -> the environment variable it defaults from (a blank value counts as unset)."""

DEFAULT_API_URL = "https://api.clerk.com"
_HOST = re.compile(r"(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+(?::[0-9]{1,5})?")


def _where(option: str) -> str:
    env = ENV_VARS.get(option)
    return f"`{option}`" + (f" (env {env})" if env else "")


def config_error(option: str, problem: str) -> ConfigurationError:
    """A [`ConfigurationError`][clerkguard.errors.ConfigurationError] naming ``option`` and its env
    variable."""
    return ConfigurationError(f"{_where(option)}: {problem}")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class PublishableKey:
    """A parsed ``pk_test_``/``pk_live_`` key.

    Attributes:
        instance_type: ``test`` or ``live``.
        frontend_api: Host (and port) of the Frontend API, e.g. ``clerk.example.com``.
        key: The key exactly as configured (surrounding whitespace removed).
            Clerk derives the suffix of its session cookie from these exact
            characters, and its keys carry no base64 padding, so the key
            cannot be rebuilt from the host.
    """

    instance_type: Literal["test", "live"]
    frontend_api: str
    key: str = field(default="", compare=False)

    @property
    def scheme(self) -> str:
        """``https``, or ``http`` for a loopback host (the local dev issuer)."""
        host = self.frontend_api.rsplit(":", 1)[0] if ":" in self.frontend_api else self.frontend_api
        return "http" if is_loopback_host(host) else "https"

    @property
    def issuer(self) -> str:
        """The ``iss`` claim tokens of this instance carry."""
        return f"{self.scheme}://{self.frontend_api}"

    @property
    def jwks_uri(self) -> str:
        """The Frontend API's public JWKS endpoint."""
        return f"{self.issuer}/.well-known/jwks.json"


def parse_publishable_key(value: str) -> PublishableKey:
    """Parse a Clerk publishable key.

    Raises:
        ConfigurationError: when ``value`` is not ``pk_test_``/``pk_live_``
            followed by base64 of ``<frontend-api-host>$``.
    """
    if not isinstance(value, str):
        raise config_error("publishable_key", "must be a string")
    value = value.strip()
    for prefix, kind in (("pk_test_", "test"), ("pk_live_", "live")):  # noqa: B007 - kind used after break
        if value.startswith(prefix):
            encoded = value[len(prefix) :]
            break
    else:
        raise config_error("publishable_key", "must start with pk_test_ or pk_live_")
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise config_error("publishable_key", "the part after the prefix is not valid base64") from None
    if not decoded.endswith("$") or _HOST.fullmatch(decoded[:-1]) is None:
        raise config_error("publishable_key", "does not encode a Frontend API host followed by '$'")
    return PublishableKey(kind, decoded[:-1].lower(), value)  # type: ignore[arg-type]


def validate_url(option: str, url: str) -> str:
    """Accept only ``https`` URLs, or ``http`` to a loopback host."""
    if not isinstance(url, str) or not url.strip():
        raise config_error(option, "must be a non-empty URL")
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise config_error(option, "is not a valid URL") from None
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host and is_loopback_host(host):
        return url
    raise config_error(option, "must be an https:// URL (http:// only for loopback hosts)")


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment: the form every log, repr and CLI shows.

    A JWKS or Backend API URL may carry ``user:password@`` or a key in its
    query string (``?api_key=...``); error reporters record the ``repr`` of
    locals, so no displayed URL may keep them.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except (ValueError, TypeError):
        return "<invalid url>"
    # rpartition: the host is what follows the *last* "@" (userinfo may hold "@").
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def env_value(option: str, explicit: str | None, env: Mapping[str, str]) -> str | None:
    """The explicit value, else the environment's (blank counts as unset)."""
    if explicit is not None:
        return explicit
    raw = env.get(ENV_VARS[option], "")
    return raw.strip() or None


def parties(value: Iterable[str] | str | None, env: Mapping[str, str]) -> frozenset[str] | None:
    """Resolve ``authorized_parties`` (a list, or a comma list in the env)."""
    if value is None:
        raw = env.get(ENV_VARS["authorized_parties"], "").strip()
        if not raw:
            return None
        value = raw
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    else:
        items = list(value)
    if not items or not all(isinstance(v, str) and v for v in items):
        raise config_error("authorized_parties", "must be a non-empty list of origin strings, or None")
    return frozenset(items)


def seconds(option: str, value: object, *, low: float, high: float, allow_zero: bool = True) -> float:
    """Validate a duration option: a finite number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise config_error(option, "must be a number of seconds")
    number = float(value)
    if not math.isfinite(number) or number < low or number > high or (number == 0 and not allow_zero):
        raise config_error(option, f"must be between {low:g} and {high:g} seconds")
    return number


def default_env() -> Mapping[str, str]:
    """The process environment."""
    return os.environ
