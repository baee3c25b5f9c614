"""Clerk webhooks: verify Svix-signed deliveries and hand handlers a typed event.

Clerk sends webhooks through Svix: a ``POST`` whose raw body is signed with
HMAC-SHA256 over ``"{svix-id}.{svix-timestamp}.{body}"`` with the base64 part
of the endpoint's ``whsec_...`` signing secret, in ``svix-signature: v1,<base64>``
(several space-separated signatures during a secret rotation). The same
scheme is the Standard Webhooks spec, whose ``webhook-id`` /
``webhook-timestamp`` / ``webhook-signature`` header names are accepted too.

::

    from clerkguard.webhooks import verify_webhook

    event = verify_webhook(raw_body, request_headers)  # CLERK_WEBHOOK_SIGNING_SECRET
    if event.type == "user.created":
        ...

In a web framework use ``require_webhook`` from its module instead
(``clerkguard.flask.require_webhook``...): it reads the raw body, verifies,
filters event types, de-duplicates retries and answers refusals with 400.
Another framework gets it from [`build_require_webhook`][clerkguard.webhooks.build_require_webhook]
and an [`Adapter`][clerkguard.adapters.Adapter] with the webhook hooks.

The HMAC is computed by the ``standardwebhooks`` library (the one Clerk's
own JavaScript SDK uses; no dependencies of its own), installed by the
``webhooks`` extra: ``pip install "clerkguard[webhooks]"``. clerkguard adds
the policy around it: an injectable clock and tolerance, strict header and
timestamp syntax, a body size limit, strict JSON, and a stable ``reason``
for every refusal (see [`WebhookError`][clerkguard.WebhookError]).
"""

from __future__ import annotations

try:
    from standardwebhooks import Webhook as _StandardWebhook
except ImportError as exc:  # tested by hiding standardwebhooks from sys.modules
    from .errors import MissingDependencyError

    raise MissingDependencyError("standardwebhooks", "webhooks") from exc

import base64
import binascii
import hmac
import json
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, TypeAlias, Union

from ._core.jsonstrict import StrictJSONError, loads_object
from ._frozen import freeze
from ._webhook_guard import RequireWebhook, WebhookGuard, WebhookKwargs, build_require_webhook
from .errors import ConfigurationError, WebhookError

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_TOLERANCE",
    "HEADER_NAMES",
    "SECRET_ENV",
    "Dedupe",
    "InMemoryDedupe",
    "RequireWebhook",
    "WebhookError",
    "WebhookEvent",
    "WebhookGuard",
    "WebhookKwargs",
    "WebhookVerifier",
    "build_require_webhook",
    "parse_secrets",
    "verify_webhook",
]

#: Environment variable holding the signing secret(s), as in Clerk's JavaScript SDK.
SECRET_ENV = "CLERK_WEBHOOK_SIGNING_SECRET"
#: Seconds a delivery's timestamp may lie before or after now (Svix's and the spec's 5 minutes).
DEFAULT_TOLERANCE = 300.0
#: Largest body accepted, in bytes (Clerk's events are a few KB).
DEFAULT_MAX_BODY = 1024 * 1024
#: (Svix name, Standard Webhooks name) of the id, timestamp and signature headers.
HEADER_NAMES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "id": ("svix-id", "webhook-id"),
        "timestamp": ("svix-timestamp", "webhook-timestamp"),
        "signature": ("svix-signature", "webhook-signature"),
    }
)
#: Nesting allowed in a payload (Clerk's metadata fields hold the app's own JSON).
MAX_PAYLOAD_DEPTH = 64
#: Longest message id and signature header accepted; most signatures examined.
MAX_ID_LENGTH = 256
MAX_SIGNATURE_HEADER = 8192
MAX_SIGNATURES = 32
#: Tolerance above this is a configuration error (replays would stay valid for days).
MAX_TOLERANCE = 24 * 3600.0

_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,11}")  # canonical: what the sender signed is what we re-sign
_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
_SECRET_SPLIT = re.compile(r"[\s,]+")

#: ``dedupe(event_id)``, sync or async: truthy means "already handled, skip it".
#: An object with a ``release(event_id)`` method is told when the handler
#: raised, so that Svix's retry of that delivery is handled again.
Dedupe = Callable[[str], Any]

HeadersLike: TypeAlias = Union[Mapping[str, str], Iterable[tuple[str, str]]]  # noqa: UP007 - a runtime alias on 3.10


@dataclass(frozen=True, repr=False)
class WebhookEvent:
    """One verified Clerk webhook delivery (immutable).

    ``data`` and everything in it is read-only (objects are read-only
    mappings, arrays are tuples); `payload` returns a fresh, mutable
    copy of the whole JSON. ``repr()`` shows the id and type only, never the
    payload (it holds personal data).
    """

    id: str
    """The message id (``svix-id``): the same on every retry of one event, so
    it is the key to de-duplicate on."""
    type: str
    """The event type, e.g. ``user.created``, ``organizationMembership.deleted``."""
    timestamp: int
    """The signed delivery time (``svix-timestamp``), Unix seconds."""
    data: Mapping[str, Any]
    """The payload's ``data``: the Clerk object (a User for ``user.*``...)."""
    object: str | None
    """The payload's ``object`` (``"event"`` for Clerk), if present."""
    instance_id: str | None
    """The Clerk instance (``ins_...``) that sent the event, if present."""
    event_timestamp: int | None
    """The payload's ``timestamp``: when Clerk created the event, Unix milliseconds."""
    raw: bytes = field(repr=False)
    """The verified body, byte for byte."""

    def payload(self) -> dict[str, Any]:
        """The whole JSON payload as a new, mutable ``dict``."""
        value: dict[str, Any] = json.loads(self.raw)
        return value

    def __repr__(self) -> str:
        return f"WebhookEvent(id={self.id!r}, type={self.type!r})"


def parse_secrets(value: str | bytes | Iterable[str | bytes], option: str = "secret") -> tuple[bytes, ...]:
    """Signing keys from ``whsec_...`` secrets (one, several, or a comma/space list).

    Several secrets are all accepted, for a rotation. The prefix is optional;
    the rest must be strict base64 (a typo must not silently become another
    key). ``bytes`` are used as the key itself. Errors name ``option``, never
    the value.
    """
    items: list[str | bytes]
    if isinstance(value, bytes):
        items = [value]
    elif isinstance(value, str):
        items = [part for part in _SECRET_SPLIT.split(value) if part]
    else:
        items = list(value)
    keys: list[bytes] = []
    for item in items:
        if isinstance(item, bytes):
            key = item
        elif isinstance(item, str):
            text = item.strip()
            text = text[len("whsec_") :] if text.startswith("whsec_") else text
            try:
                key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigurationError(
                    f"{option}: a webhook signing secret is not valid base64 "
                    "(expected whsec_ followed by base64, as shown in the Clerk dashboard)"
                ) from None
        else:
            raise ConfigurationError(f"{option}: webhook secrets must be strings")
        if not key:
            raise ConfigurationError(f"{option}: a webhook signing secret is empty")
        keys.append(key)
    if not keys:
        raise ConfigurationError(f"{option}: no webhook signing secret given")
    return tuple(keys)


def _header_map(headers: HeadersLike) -> dict[str, str]:
    """The webhook headers of ``headers`` by lower-case name; conflicting duplicates refused."""
    wanted = {name for pair in HEADER_NAMES.values() for name in pair}
    # Framework header objects (werkzeug Headers, multidicts) yield every value from items().
    pairs: Iterable[Any] = headers.items() if hasattr(headers, "items") else headers
    found: dict[str, str] = {}
    for name, value in pairs:
        key = str(name).lower()
        if key not in wanted:
            continue
        text = str(value).strip()
        if key in found and found[key] != text:
            raise WebhookError("headers-conflict", f"two different {key} headers were sent")
        found[key] = text
    return found


def _pick(found: Mapping[str, str], what: str) -> str | None:
    svix, standard = HEADER_NAMES[what]
    a, b = found.get(svix) or None, found.get(standard) or None
    if a is not None and b is not None and a != b:
        raise WebhookError("headers-conflict", f"{svix} and {standard} disagree")
    return a if a is not None else b


class WebhookVerifier:
    """Verifies deliveries for one endpoint (its secret or secrets).

    Args:
        secret: The ``whsec_...`` signing secret, several (a sequence, or one
            string of comma/space-separated secrets) during a rotation, or
            ``None`` for ``CLERK_WEBHOOK_SIGNING_SECRET``.
        tolerance: Seconds the signed timestamp may differ from now (default 300).
        max_body: Largest body in bytes (default 1 MiB).
        clock: ``() -> Unix seconds`` (default `time.time`).
        env: Where to read ``CLERK_WEBHOOK_SIGNING_SECRET`` (default ``os.environ``).

    Raises:
        ConfigurationError: no secret, a malformed secret, or a bad option.
    """

    __slots__ = ("_signers", "clock", "max_body", "tolerance")

    def __init__(
        self,
        secret: str | bytes | Sequence[str | bytes] | None = None,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        max_body: int = DEFAULT_MAX_BODY,
        clock: Callable[[], float] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if secret is None:
            value = (os.environ if env is None else env).get(SECRET_ENV, "")
            if not value.strip():
                raise ConfigurationError(
                    f"no webhook signing secret: pass secret= or set {SECRET_ENV} "
                    "(Clerk dashboard > Webhooks > your endpoint > Signing Secret)"
                )
            keys = parse_secrets(value, SECRET_ENV)
        else:
            keys = parse_secrets(secret)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
            raise ConfigurationError("tolerance must be a number of seconds")
        if not (math.isfinite(tolerance) and 0 <= tolerance <= MAX_TOLERANCE):
            raise ConfigurationError(f"tolerance must be between 0 and {MAX_TOLERANCE:.0f} seconds")
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ConfigurationError("max_body must be a positive number of bytes")
        self._signers = tuple(_StandardWebhook(key) for key in keys)
        self.tolerance = float(tolerance)
        """Seconds of allowed difference between the signed timestamp and now."""
        self.max_body = max_body
        """Largest accepted body, in bytes."""
        self.clock: Callable[[], float] = clock or time.time
        """The clock deliveries are judged by."""

    def check_size(self, size: int) -> None:
        """Refuse a body of ``size`` bytes over `max_body` (``body-too-large``)."""
        if size > self.max_body:
            raise WebhookError("body-too-large", f"the body is over the {self.max_body}-byte limit")

    def verify(self, body: bytes, headers: HeadersLike) -> WebhookEvent:
        """Verify one delivery and return its event, or raise [`WebhookError`][clerkguard.WebhookError].

        Args:
            body: The raw request body exactly as received (before any JSON parsing).
            headers: The request headers: a mapping (any case) or ``(name, value)``
                pairs; ``svix-*`` or ``webhook-*`` names.
        """
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError("verify_webhook: body must be the raw request body as bytes")
        body = bytes(body)
        self.check_size(len(body))
        found = _header_map(headers)
        msg_id, stamp, signature = (_pick(found, what) for what in ("id", "timestamp", "signature"))
        if msg_id is None or stamp is None or signature is None:
            values = {"id": msg_id, "timestamp": stamp, "signature": signature}
            missing = ", ".join(HEADER_NAMES[what][0] for what, value in values.items() if value is None)
            raise WebhookError("signature-missing", f"missing webhook header(s): {missing}")
        if len(msg_id) > MAX_ID_LENGTH or not _ID.fullmatch(msg_id):
            raise WebhookError("id-invalid", "the message id is not a short printable token")
        if not _TIMESTAMP.fullmatch(stamp):
            raise WebhookError("timestamp-invalid", "the webhook timestamp is not whole Unix seconds")
        timestamp = int(stamp)
        now = self.clock()
        if timestamp < now - self.tolerance:
            raise WebhookError("timestamp-out-of-window", "the webhook timestamp is too old")
        if timestamp > now + self.tolerance:
            raise WebhookError("timestamp-out-of-window", "the webhook timestamp is in the future")
        if not self._signed(msg_id, timestamp, body, signature):
            raise WebhookError("signature-invalid", "no signature matches the signing secret")
        return _event(msg_id, timestamp, body)

    def _signed(self, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
        if len(header) > MAX_SIGNATURE_HEADER:
            return False
        # "v1,<base64>" entries separated by spaces; other schemes (v1a) are skipped.
        entries = header.split()[:MAX_SIGNATURES]
        offered = [s.encode("utf-8", "replace") for s in entries if s.startswith("v1,")]
        if not offered:
            return False
        when = datetime.fromtimestamp(timestamp, tz=timezone.utc)
        matched = False
        for signer in self._signers:
            expected = signer.sign(msg_id, when, body).encode("ascii")
            for candidate in offered:
                # No early exit: the time taken does not depend on which one matched.
                matched |= hmac.compare_digest(expected, candidate)
        return matched


def _event(msg_id: str, timestamp: int, body: bytes) -> WebhookEvent:
    try:
        payload = loads_object(body, max_depth=MAX_PAYLOAD_DEPTH)
    except StrictJSONError:
        raise WebhookError("payload-invalid", "the body is not a strict UTF-8 JSON object") from None
    kind, data = payload.get("type"), payload.get("data")
    if not isinstance(kind, str) or not kind:
        raise WebhookError("payload-invalid", "the payload has no event type")
    if not isinstance(data, dict):
        raise WebhookError("payload-invalid", "the payload's data is not an object")
    optional: dict[str, Any] = {}
    for name, expected in (("object", str), ("instance_id", str), ("timestamp", int)):
        value = payload.get(name)
        if value is not None and (not isinstance(value, expected) or isinstance(value, bool)):
            raise WebhookError("payload-invalid", f"the payload's {name} has the wrong type")
        optional[name] = value
    return WebhookEvent(
        id=msg_id,
        type=kind,
        timestamp=timestamp,
        data=freeze(data),
        object=optional["object"],
        instance_id=optional["instance_id"],
        event_timestamp=optional["timestamp"],
        raw=body,
    )


def verify_webhook(
    body: bytes,
    headers: HeadersLike,
    secret: str | bytes | Sequence[str | bytes] | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    max_body: int = DEFAULT_MAX_BODY,
    clock: Callable[[], float] | None = None,
) -> WebhookEvent:
    """Verify one Clerk (Svix / Standard Webhooks) delivery and return its event.

    Args:
        body: The raw request body, exactly as received.
        headers: The request headers (``svix-*`` or ``webhook-*`` names, any case).
        secret: ``whsec_...`` secret(s); default ``CLERK_WEBHOOK_SIGNING_SECRET``.
        tolerance: Allowed difference between the signed timestamp and now, seconds.
        max_body: Largest accepted body, bytes.
        clock: ``() -> Unix seconds``, e.g. to replay a captured delivery.

    Raises:
        WebhookError: the delivery is refused (``.reason`` says why; status 400).
        ConfigurationError: no secret, or a malformed one.
    """
    verifier = WebhookVerifier(secret, tolerance=tolerance, max_body=max_body, clock=clock)
    return verifier.verify(body, headers)


class InMemoryDedupe:
    """A bounded, thread-safe "seen ids" set for ``require_webhook(dedupe=...)``.

    Per process and lost on restart: fine for one worker and for tests; use a
    database table with several workers (``docs/webhooks.md``). When a
    handler raises, ``require_webhook`` calls `release`, so Svix's
    retry of that delivery is handled again.

    Args:
        maxsize: Ids remembered (the oldest are forgotten first). Svix retries
            for about a day; size it for a day of events.
    """

    def __init__(self, maxsize: int = 100_000) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigurationError("maxsize must be a positive integer")
        self.maxsize = maxsize
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, event_id: str) -> bool:
        """``True`` if ``event_id`` was seen before; else remember it and return ``False``."""
        with self._lock:
            if event_id in self._seen:
                return True
            self._seen[event_id] = None
            if len(self._seen) > self.maxsize:
                self._seen.popitem(last=False)
            return False

    def release(self, event_id: str) -> None:
        """Forget ``event_id`` (its handler failed: the retry must run it again)."""
        with self._lock:
            self._seen.pop(event_id, None)

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seen
