"""clerkguard.webhooks: known answers, round-trips, and every refusal of verify_webhook."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from clerkguard import AuthError, ClerkGuardError, ConfigurationError, MissingDependencyError, WebhookError
from clerkguard.testing import WebhookSigner, sign_webhook
from clerkguard.webhooks import InMemoryDedupe, WebhookVerifier, parse_secrets, verify_webhook

# The published example of the Svix docs and of the Standard Webhooks reference tests.
KAT_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KAT_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
KAT_TIMESTAMP = 1614265330
KAT_BODY = b'{"test": 2432232314}'
KAT_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
KAT_HEADERS = {"svix-id": KAT_ID, "svix-timestamp": str(KAT_TIMESTAMP), "svix-signature": KAT_SIGNATURE}


def frozen(at: float = KAT_TIMESTAMP) -> WebhookVerifier:
    return WebhookVerifier(KAT_SECRET, clock=lambda: at)


def clerk_body(event_type: str = "user.created", **extra: object) -> bytes:
    payload = {
        "data": {"id": "user_1", "object": "user", "public_metadata": {"plan": "pro"}},
        "instance_id": "ins_1",
        "object": "event",
        "timestamp": 1654012591835,
        "type": event_type,
        **extra,
    }
    return json.dumps(payload).encode()


# -- known answers -----------------------------------------------------------------------------
def test_known_answer_library_sign() -> None:
    when = datetime.fromtimestamp(KAT_TIMESTAMP, tz=timezone.utc)
    assert Webhook(KAT_SECRET).sign(KAT_ID, when, KAT_BODY) == KAT_SIGNATURE


def test_known_answer_our_signer() -> None:
    assert sign_webhook(KAT_SECRET, KAT_ID, KAT_TIMESTAMP, KAT_BODY) == KAT_SIGNATURE
    signer = WebhookSigner(KAT_SECRET)
    assert signer.headers(KAT_BODY, msg_id=KAT_ID, timestamp=KAT_TIMESTAMP)["svix-signature"] == KAT_SIGNATURE


def test_known_answer_verifies_at_its_time_only() -> None:
    verifier = frozen()
    # The example body is JSON but not a Clerk event: the signature passes, the payload check refuses.
    with pytest.raises(WebhookError) as info:
        verifier.verify(KAT_BODY, KAT_HEADERS)
    assert info.value.reason == "payload-invalid"
    assert verifier._signed(KAT_ID, KAT_TIMESTAMP, KAT_BODY, KAT_SIGNATURE)
    assert not verifier._signed(KAT_ID, KAT_TIMESTAMP, KAT_BODY + b" ", KAT_SIGNATURE)
    # The last base64 character changed (the reference tests' negative example).
    assert not verifier._signed(KAT_ID, KAT_TIMESTAMP, KAT_BODY, KAT_SIGNATURE[:-2] + "A=")
    with pytest.raises(WebhookError) as late:
        frozen(KAT_TIMESTAMP + 301).verify(KAT_BODY, KAT_HEADERS)
    assert late.value.reason == "timestamp-out-of-window"


# -- round trips -------------------------------------------------------------------------------
def test_our_signer_verifies_with_the_library_and_with_us() -> None:
    signer = WebhookSigner()
    body, headers = signer.delivery("user.updated", {"id": "user_9"})
    library_headers = {k.replace("svix-", "webhook-"): v for k, v in headers.items()}
    Webhook(signer.secret).verify(body, library_headers, json_parse=False)  # raises if not
    event = verify_webhook(body, headers, signer.secret)
    assert (event.type, event.data["id"], event.id) == ("user.updated", "user_9", headers["svix-id"])


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=64),
    msg_id=st.from_regex(r"msg_[A-Za-z0-9]{1,40}", fullmatch=True),
    timestamp=st.integers(min_value=0, max_value=4_000_000_000),
    body=st.binary(max_size=512),
)
def test_our_signer_equals_the_library(key: bytes, msg_id: str, timestamp: int, body: bytes) -> None:
    when = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    assert sign_webhook(key, msg_id, timestamp, body) == Webhook(key).sign(msg_id, when, body)


@settings(max_examples=60, deadline=None)
@given(mutation=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_is_refused(mutation: int, flip: int) -> None:
    signer = WebhookSigner(KAT_SECRET, clock=lambda: KAT_TIMESTAMP)
    body, headers = signer.delivery("user.created", {"id": "user_1"})
    tampered = bytearray(body)
    tampered[mutation % len(body)] ^= flip
    with pytest.raises(WebhookError) as info:
        frozen().verify(bytes(tampered), headers)
    assert info.value.reason == "signature-invalid"


# -- the event ----------------------------------------------------------------------------------
def test_event_fields_and_immutability() -> None:
    signer = WebhookSigner(KAT_SECRET)
    body = clerk_body()
    headers = signer.headers(body, msg_id="msg_1", timestamp=KAT_TIMESTAMP)
    event = frozen().verify(body, headers)
    assert event.id == "msg_1"
    assert event.type == "user.created"
    assert event.timestamp == KAT_TIMESTAMP
    assert event.object == "event"
    assert event.instance_id == "ins_1"
    assert event.event_timestamp == 1654012591835
    assert event.raw == body
    assert event.data["public_metadata"]["plan"] == "pro"
    with pytest.raises(TypeError):
        event.data["id"] = "user_2"  # type: ignore[index]
    with pytest.raises(TypeError):
        event.data["public_metadata"]["plan"] = "free"  # nested objects are read-only too
    with pytest.raises(AttributeError):
        event.type = "user.deleted"  # type: ignore[misc]
    copy = event.payload()
    copy["data"]["id"] = "changed"
    assert event.data["id"] == "user_1"
    assert "user_1" not in repr(event)
    assert "pro" not in repr(event)


def test_optional_fields_may_be_absent() -> None:
    body = json.dumps({"type": "user.deleted", "data": {"id": "user_1", "deleted": True}}).encode()
    headers = WebhookSigner(KAT_SECRET).headers(body, msg_id="msg_2", timestamp=KAT_TIMESTAMP)
    event = frozen().verify(body, headers)
    assert (event.object, event.instance_id, event.event_timestamp) == (None, None, None)


# -- refusals ------------------------------------------------------------------------------------
def refusal(body: bytes, headers: dict[str, str], verifier: WebhookVerifier | None = None) -> WebhookError:
    with pytest.raises(WebhookError) as info:
        (verifier or frozen()).verify(body, headers)
    return info.value


def signed(body: bytes, **overrides: str) -> dict[str, str]:
    headers = WebhookSigner(KAT_SECRET).headers(body, msg_id="msg_3", timestamp=KAT_TIMESTAMP)
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v != "DROP"}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"svix-signature": "DROP"}, "signature-missing"),
        ({"svix-id": "DROP"}, "signature-missing"),
        ({"svix-timestamp": "DROP"}, "signature-missing"),
        ({"svix-id": ""}, "signature-missing"),
        ({"svix-id": "msg with space"}, "id-invalid"),
        ({"svix-id": "m" * 257}, "id-invalid"),
        ({"svix-timestamp": "1614265330.0"}, "timestamp-invalid"),
        ({"svix-timestamp": "1e9"}, "timestamp-invalid"),
        ({"svix-timestamp": "-1"}, "timestamp-invalid"),
        ({"svix-timestamp": "\u0661\u0662"}, "timestamp-invalid"),  # Arabic-Indic digits
        ({"svix-timestamp": "9" * 13}, "timestamp-invalid"),
        ({"svix-timestamp": "0" + str(KAT_TIMESTAMP)}, "timestamp-invalid"),  # not what was signed
        ({"svix-timestamp": str(KAT_TIMESTAMP - 301)}, "timestamp-out-of-window"),
        ({"svix-timestamp": str(KAT_TIMESTAMP + 301)}, "timestamp-out-of-window"),
        ({"svix-signature": "v1," + "A" * 44}, "signature-invalid"),
        ({"svix-signature": "v1a,AAAA"}, "signature-invalid"),
        ({"svix-signature": "garbage"}, "signature-invalid"),
        ({"svix-signature": "v1,x " * 3000}, "signature-invalid"),
        ({"webhook-id": "msg_other"}, "headers-conflict"),
    ],
)
def test_refusals(overrides: dict[str, str], reason: str) -> None:
    body = clerk_body()
    error = refusal(body, signed(body, **overrides))
    assert error.reason == reason
    assert error.status == 400
    assert isinstance(error, AuthError)
    assert isinstance(error, ClerkGuardError)
    text = str(error) + error.detail + repr(error)
    assert KAT_SECRET.removeprefix("whsec_") not in text
    assert "user_1" not in text


def test_signature_beyond_the_window_edge_is_fine_at_the_edge() -> None:
    body = clerk_body()
    assert frozen(KAT_TIMESTAMP + 300).verify(body, signed(body)).type == "user.created"
    assert frozen(KAT_TIMESTAMP - 300).verify(body, signed(body)).type == "user.created"


def test_tolerance_is_configurable() -> None:
    body = clerk_body()
    strict = WebhookVerifier(KAT_SECRET, tolerance=10, clock=lambda: KAT_TIMESTAMP + 11)
    assert refusal(body, signed(body), strict).reason == "timestamp-out-of-window"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "payload-invalid"),
        (b"[1, 2]", "payload-invalid"),
        (b'{"type": "user.created"}', "payload-invalid"),  # no data
        (b'{"type": "", "data": {}}', "payload-invalid"),
        (b'{"type": 1, "data": {}}', "payload-invalid"),
        (b'{"type": "user.created", "data": []}', "payload-invalid"),
        (b'{"type": "user.created", "data": {}, "timestamp": "soon"}', "payload-invalid"),
        (b'{"type": "user.created", "data": {}, "timestamp": true}', "payload-invalid"),
        (b'{"type": "user.created", "data": {"a": NaN}}', "payload-invalid"),
        (b'{"type": "a", "type": "b", "data": {}}', "payload-invalid"),
        ('{"type": "user.created", "data": {}}'.encode("utf-16"), "payload-invalid"),
        (b"\xff\xfe", "payload-invalid"),
    ],
)
def test_payload_refusals_after_a_valid_signature(body: bytes, reason: str) -> None:
    assert refusal(body, signed(body)).reason == reason


def test_body_limit() -> None:
    body = clerk_body(padding="x" * 200)
    small = WebhookVerifier(KAT_SECRET, max_body=len(body) - 1, clock=lambda: KAT_TIMESTAMP)
    assert refusal(body, signed(body), small).reason == "body-too-large"
    exact = WebhookVerifier(KAT_SECRET, max_body=len(body), clock=lambda: KAT_TIMESTAMP)
    assert exact.verify(body, signed(body)).type == "user.created"


def test_body_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        frozen().verify(clerk_body().decode(), {})  # type: ignore[arg-type]


# -- headers ---------------------------------------------------------------------------------------
def test_headers_any_case_and_as_pairs_and_standard_names() -> None:
    body = clerk_body()
    headers = signed(body)
    assert frozen().verify(body, {k.upper(): v for k, v in headers.items()}).id == "msg_3"
    assert frozen().verify(body, list(headers.items())).id == "msg_3"
    standard = {k.replace("svix-", "webhook-"): v for k, v in headers.items()}
    assert frozen().verify(body, standard).id == "msg_3"


def test_duplicate_header_lines_must_agree() -> None:
    body = clerk_body()
    pairs = [*signed(body).items(), ("svix-id", "msg_3")]
    assert frozen().verify(body, pairs).id == "msg_3"
    pairs = [*signed(body).items(), ("svix-id", "msg_4")]
    assert refusal(body, pairs).reason == "headers-conflict"  # type: ignore[arg-type]


# -- secrets and rotation ------------------------------------------------------------------------
def test_rotation_accepts_every_configured_secret() -> None:
    old, new = WebhookSigner(), WebhookSigner()
    verifier = WebhookVerifier([new.secret, old.secret])
    for signer in (old, new):
        body, headers = signer.delivery("user.created", {"id": "user_1"})
        assert verifier.verify(body, headers).type == "user.created"
    body, headers = WebhookSigner().delivery("user.created", {"id": "user_1"})
    assert refusal(body, headers, verifier).reason == "signature-invalid"


def test_secret_from_environment_one_or_several(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = WebhookSigner(), WebhookSigner()
    monkeypatch.setenv("CLERK_WEBHOOK_SIGNING_SECRET", f"{new.secret}, {old.secret}")
    body, headers = old.delivery("user.created", {"id": "user_1"})
    assert verify_webhook(body, headers).type == "user.created"
    monkeypatch.delenv("CLERK_WEBHOOK_SIGNING_SECRET")
    with pytest.raises(ConfigurationError, match="CLERK_WEBHOOK_SIGNING_SECRET"):
        verify_webhook(body, headers)


@pytest.mark.parametrize("secret", ["whsec_not*base64!", "whsec_", "", [], ["whsec_AAAA", 5]])
def test_malformed_secrets_are_configuration_errors(secret: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        WebhookVerifier(secret)  # type: ignore[arg-type]
    if isinstance(secret, str) and len(secret) > 6:
        assert secret[6:] not in str(info.value)


def test_secret_prefix_is_optional_and_padding_too() -> None:
    assert parse_secrets(KAT_SECRET) == parse_secrets(KAT_SECRET.removeprefix("whsec_"))
    assert parse_secrets("whsec_AAAA AAA") == (b"\x00\x00\x00", b"\x00\x00")


@pytest.mark.parametrize(
    "options", [{"tolerance": -1}, {"tolerance": float("nan")}, {"tolerance": 10**9}, {"max_body": 0}]
)
def test_bad_options(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        WebhookVerifier(KAT_SECRET, **options)  # type: ignore[arg-type]


# -- dedupe --------------------------------------------------------------------------------------
def test_in_memory_dedupe_is_bounded_and_releasable() -> None:
    seen = InMemoryDedupe(maxsize=2)
    assert seen("a") is False
    assert seen("a") is True
    seen("b")
    seen("c")  # "a" falls out
    assert "a" not in seen
    assert len(seen) == 2
    seen.release("c")
    assert seen("c") is False


# -- packaging -----------------------------------------------------------------------------------
def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "clerkguard.webhooks")
    monkeypatch.setitem(sys.modules, "standardwebhooks", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "clerkguard\[webhooks\]"') as info:
        import clerkguard.webhooks  # noqa: F401
    assert info.value.extra == "webhooks"


def test_framework_modules_import_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    for name in ("clerkguard.webhooks", "clerkguard._webhook_guard", "clerkguard.flask"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "standardwebhooks", None)
    flask_module = importlib.import_module("clerkguard.flask")
    assert callable(flask_module.require_auth)
    with pytest.raises(MissingDependencyError):
        flask_module.require_webhook(events=["user.created"])


def test_nothing_secret_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = clerk_body()
    for overrides in ({}, {"svix-signature": "v1,AAAA"}):
        try:
            frozen().verify(body, signed(body, **overrides))
        except WebhookError:
            pass
    logged = caplog.text
    assert KAT_SECRET.removeprefix("whsec_") not in logged
    assert "user_1" not in logged
