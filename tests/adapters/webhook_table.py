"""The webhook section of the shared table: Clerk deliveries and the answer every framework gives.

Every harness serves ``POST /webhooks/clerk`` (see ``harness.py``), guarded by
``require_webhook`` with the table's two secrets (a rotation: current and
previous), the user events only, and an in-memory dedupe. A delivery is
built when it is sent (signed at that moment: the 5-minute window must not
depend on how long the suite has run), by a :class:`Delivery` recipe.

Refused and ignored deliveries are followed by a valid delivery with the
*same* id, which must reach the handler exactly once: the refused one
neither ran the handler nor was recorded by the dedupe hook.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clerkguard.testing import WebhookSigner, b64url
from clerkguard.webhooks import DEFAULT_MAX_BODY

from .harness import WEBHOOK_SECRETS

__all__ = ["PATH", "USER_ID", "WEBHOOK_CASES", "Delivery", "WebhookCase", "signers"]

PATH = "/webhooks/clerk"
USER_ID = "user_webhook"
USER = {"id": USER_ID, "object": "user", "first_name": "Ada", "email_addresses": []}


def signers() -> dict[str, WebhookSigner]:
    """The table's signers: the route's current and previous secrets, and a stranger's."""
    current, previous = WEBHOOK_SECRETS
    return {"current": WebhookSigner(current), "previous": WebhookSigner(previous), "wrong": WebhookSigner()}


def new_id() -> str:
    """A fresh Svix-style message id."""
    return "msg_" + b64url(secrets.token_bytes(18))


@dataclass(frozen=True)
class Delivery:
    """How to build one request: ``build(signers, msg_id) -> (body, headers)``."""

    build: Callable[[dict[str, WebhookSigner], str], tuple[bytes, dict[str, str]]]


def signed(
    event_type: str = "user.created",
    *,
    by: str = "current",
    age: int = 0,
    prefix: str = "svix",
    body: bytes | None = None,
    edit: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]] | None = None,
) -> Delivery:
    """A delivery signed by ``by`` ``age`` seconds ago (negative: in the future), then ``edit``-ed."""

    def build(keys: dict[str, WebhookSigner], msg_id: str) -> tuple[bytes, dict[str, str]]:
        signer = keys[by]
        payload = body if body is not None else signer.payload(event_type, USER)
        headers = signer.headers(payload, msg_id=msg_id, timestamp=int(time.time()) - age, prefix=prefix)
        return edit(payload, headers) if edit is not None else (payload, headers)

    return Delivery(build)


def _without(*names: str) -> Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]:
    return lambda body, headers: (body, {k: v for k, v in headers.items() if k not in names})


def _tamper(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b'"Ada"', b'"Eve"'), headers


def _signatures(*extra: str, keep: bool = True) -> Callable[[bytes, dict[str, str]], tuple[bytes, dict]]:
    """Replace the signature header with ``extra`` entries (+ the valid one at the end if ``keep``)."""

    def edit(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        valid = headers["svix-signature"]
        entries = [*extra, valid] if keep else [e.replace("{valid}", valid[3:]) for e in extra]
        return body, {**headers, "svix-signature": " ".join(entries)}

    return edit


def _both_names(other_id: bool) -> Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]:
    def edit(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        extra = {k.replace("svix-", "webhook-"): v for k, v in headers.items() if k.startswith("svix-")}
        if other_id:
            extra["webhook-id"] = new_id()
        return body, {**headers, **extra}

    return edit


def _set(name: str, value: str) -> Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]:
    return lambda body, headers: (body, {**headers, name: value})


def _event(**fields: Any) -> bytes:
    return json.dumps({"object": "event", "type": "user.created", "data": USER, **fields}).encode()


BOGUS = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="


@dataclass(frozen=True)
class WebhookCase:
    """One delivery and the answer every framework must give.

    Attributes:
        name: Test id.
        delivery: How to build the request.
        status: Expected status.
        reason: The ``reason`` of the JSON body: the refusal's (4xx) or the
            acknowledgement's (``event-type-not-handled``, ``duplicate-delivery``).
        handled: The handler runs (the answer is the handler's JSON, ``calls == 1``).
        json: Keys the handler's JSON must have, with these values.
        repeat: Send the same delivery this many times; the last answer is checked.
        resign: With ``repeat``, sign each repetition anew (a Svix retry: same id,
            new timestamp and signature) instead of resending the same bytes.
    """

    name: str
    delivery: Delivery
    status: int
    reason: str | None = None
    handled: bool = False
    json: dict[str, Any] = field(default_factory=dict)
    repeat: int = 1
    resign: bool = False

    def __str__(self) -> str:
        return self.name


def ok(name: str, delivery: Delivery, event_type: str = "user.created", **kwargs: Any) -> WebhookCase:
    """A delivery that reaches the handler once."""
    return WebhookCase(
        name, delivery, 200, handled=True, json={"type": event_type, "user_id": USER_ID, "calls": 1}, **kwargs
    )


def refused(name: str, delivery: Delivery, reason: str) -> WebhookCase:
    """A delivery refused with 400 ``reason``."""
    return WebhookCase(name, delivery, 400, reason)


WEBHOOK_CASES: list[WebhookCase] = [
    # -- deliveries that reach the handler -------------------------------------------------
    ok("valid", signed()),
    ok("valid-user-updated", signed("user.updated"), "user.updated"),
    ok("valid-user-deleted", signed("user.deleted"), "user.deleted"),
    ok("standard-webhooks-header-names", signed(prefix="webhook")),
    ok("both-header-names-agreeing", signed(edit=_both_names(other_id=False))),
    ok("rotation-previous-secret", signed(by="previous")),
    ok("multiple-signatures-one-valid", signed(edit=_signatures(BOGUS, "v1a,c2lnbmF0dXJl"))),
    ok("timestamp-4-minutes-old", signed(age=240)),
    ok("timestamp-4-minutes-ahead", signed(age=-240)),
    # -- refusals (400, the handler never runs) -----------------------------------------------
    refused("tampered-body", signed(edit=_tamper), "signature-invalid"),
    refused("wrong-secret", signed(by="wrong"), "signature-invalid"),
    refused(
        "multiple-signatures-none-valid",
        signed(edit=_signatures(BOGUS, BOGUS, keep=False)),
        "signature-invalid",
    ),
    refused(
        "unknown-signature-version", signed(edit=_signatures("v2,{valid}", keep=False)), "signature-invalid"
    ),
    refused("signature-not-base64", signed(edit=_set("svix-signature", "v1,@@@")), "signature-invalid"),
    refused("timestamp-too-old", signed(age=600), "timestamp-out-of-window"),
    refused("timestamp-in-future", signed(age=-600), "timestamp-out-of-window"),
    refused(
        "timestamp-not-integer", signed(edit=_set("svix-timestamp", "1700000000.5")), "timestamp-invalid"
    ),
    refused("missing-signature", signed(edit=_without("svix-signature")), "signature-missing"),
    refused("missing-id", signed(edit=_without("svix-id")), "signature-missing"),
    refused("missing-timestamp", signed(edit=_without("svix-timestamp")), "signature-missing"),
    refused(
        "no-webhook-headers",
        signed(edit=_without("svix-id", "svix-timestamp", "svix-signature")),
        "signature-missing",
    ),
    refused("svix-and-webhook-ids-disagree", signed(edit=_both_names(other_id=True)), "headers-conflict"),
    refused("oversized-body", signed(body=_event(pad="x" * DEFAULT_MAX_BODY)), "body-too-large"),
    refused("signed-body-not-json", signed(body=b"user.created for user_webhook"), "payload-invalid"),
    refused("signed-body-json-array", signed(body=b'[{"type": "user.created"}]'), "payload-invalid"),
    refused("signed-body-without-type", signed(body=json.dumps({"data": USER}).encode()), "payload-invalid"),
    refused(
        "signed-body-duplicate-keys",
        signed(body=b'{"type": "user.created", "type": "user.deleted", "data": {"id": "user_webhook"}}'),
        "payload-invalid",
    ),
    # -- acknowledged without the handler (2xx: Svix must not retry) ---------------------------
    WebhookCase("unlisted-event-type", signed("session.created"), 200, "event-type-not-handled"),
    WebhookCase("duplicate-same-bytes", signed(), 200, "duplicate-delivery", repeat=2),
    WebhookCase("duplicate-svix-retry", signed(), 200, "duplicate-delivery", repeat=2, resign=True),
]
