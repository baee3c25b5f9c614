"""The signed-in user as the Backend API describes them: [`User`][clerkguard.users.User].

[`ClerkAuth.user`][clerkguard.ClerkAuth.user] and
[`ClerkAuth.auser`][clerkguard.ClerkAuth.auser] fetch ``GET {api_url}/v1/users/{id}``
and return this small, immutable object: the fields ``authorize`` callbacks
usually need (names, primary email, username, image, public metadata, times)
plus the whole answer as ``raw``. No validation library is involved: a field
of an unexpected type reads as ``None`` (or empty), the answer itself is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._frozen import EMPTY, freeze

__all__ = ["User"]


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) else None


def _seconds(data: Mapping[str, Any], name: str) -> float | None:
    # Clerk sends Unix milliseconds.
    value = data.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1000
    return None


class User:
    """A Clerk user (``GET /v1/users/{id}``). Immutable; built by `ClerkAuth.user`/`auser`.

    Attributes:
        id: ``user_...``.
        first_name: First name, or ``None``.
        last_name: Last name, or ``None``.
        username: Username, or ``None`` (when the instance does not use usernames).
        primary_email_address: The primary email address, or ``None``.
        email_addresses: Every email address of the user, primary first.
        primary_phone_number: The primary phone number, or ``None``.
        image_url: Profile image URL, or ``None``.
        external_id: Your own id for the user, if you set one.
        public_metadata: ``public_metadata``, read-only all the way down.
        banned: Whether the user is banned.
        locked: Whether the user is locked out.
        created_at: Creation time (Unix seconds), or ``None``.
        updated_at: Last update (Unix seconds), or ``None``.
        last_sign_in_at: Last sign-in (Unix seconds), or ``None``.
        raw: The whole Backend API answer, read-only (``private_metadata`` included:
            never send it to a client).
    """

    __slots__ = (
        "banned",
        "created_at",
        "email_addresses",
        "external_id",
        "first_name",
        "id",
        "image_url",
        "last_name",
        "last_sign_in_at",
        "locked",
        "primary_email_address",
        "primary_phone_number",
        "public_metadata",
        "raw",
        "updated_at",
        "username",
    )

    id: str
    first_name: str | None
    last_name: str | None
    username: str | None
    primary_email_address: str | None
    email_addresses: tuple[str, ...]
    primary_phone_number: str | None
    image_url: str | None
    external_id: str | None
    public_metadata: Mapping[str, Any]
    banned: bool
    locked: bool
    created_at: float | None
    updated_at: float | None
    last_sign_in_at: float | None
    raw: Mapping[str, Any]

    def __init__(self, data: Mapping[str, Any]) -> None:
        """Build from a Backend API user object (a ``dict`` with at least a string ``id``).

        Raises:
            ValueError: when ``data`` has no string ``id``.
        """
        user_id = data.get("id")
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("a Clerk user object has a string id")
        set_ = object.__setattr__
        set_(self, "id", user_id)
        for name in ("first_name", "last_name", "username", "image_url", "external_id"):
            set_(self, name, _text(data, name))
        emails = _identifiers(
            data.get("email_addresses"), "email_address", _text(data, "primary_email_address_id")
        )
        set_(self, "email_addresses", emails[1])
        set_(self, "primary_email_address", emails[0])
        phones = _identifiers(
            data.get("phone_numbers"), "phone_number", _text(data, "primary_phone_number_id")
        )
        set_(self, "primary_phone_number", phones[0])
        metadata = data.get("public_metadata")
        set_(self, "public_metadata", freeze(metadata) if isinstance(metadata, dict) else EMPTY)
        set_(self, "banned", data.get("banned") is True)
        set_(self, "locked", data.get("locked") is True)
        set_(self, "created_at", _seconds(data, "created_at"))
        set_(self, "updated_at", _seconds(data, "updated_at"))
        set_(self, "last_sign_in_at", _seconds(data, "last_sign_in_at"))
        set_(self, "raw", freeze(dict(data)))

    @property
    def full_name(self) -> str | None:
        """``"first last"`` from the names that are set, or ``None`` when neither is."""
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) or None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("User is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("User is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, User):
            return NotImplemented
        return self.raw == other.raw

    def __hash__(self) -> int:
        return hash((self.id, self.updated_at))

    def __repr__(self) -> str:
        # Identifiers only: names and addresses are personal data, kept out of logs.
        return f"User(id={self.id!r})"


def _identifiers(items: object, member: str, primary_id: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(the primary value, every value with the primary first) of Clerk's ``email_addresses``-like lists."""
    if not isinstance(items, list):
        return None, ()
    primary = None
    values: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        value = item.get(member)
        if not isinstance(value, str):
            continue
        if primary is None and primary_id is not None and item.get("id") == primary_id:
            primary = value
        else:
            values.append(value)
    return primary, (primary, *values) if primary is not None else tuple(values)
