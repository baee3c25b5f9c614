"""``clerkguard webhook sign|verify``: real subprocesses, the secret only ever in the environment."""

from __future__ import annotations

import json
import time
from pathlib import Path

from clerkguard.testing import WebhookSigner

from .support import run

KAT_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KAT_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
ENV = {"CLERK_WEBHOOK_SIGNING_SECRET": KAT_SECRET}


def test_sign_reproduces_the_published_example(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"test": 2432232314}')
    done = run(
        "webhook",
        "sign",
        str(body),
        "--id",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "--timestamp",
        "1614265330",
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "svix-id: msg_p5jXN8AQM9LWM0D4loKWxJek",
        "svix-timestamp: 1614265330",
        f"svix-signature: {KAT_SIGNATURE}",
    ]


def test_sign_then_verify_from_stdin(tmp_path: Path) -> None:
    body = json.dumps({"type": "user.created", "data": {"id": "user_1"}}).encode()
    signed = run("webhook", "sign", "-", "--json", stdin=body, env=ENV)
    assert signed.returncode == 0, signed.stderr
    headers = tmp_path / "headers.json"
    headers.write_text(signed.stdout)
    done = run("webhook", "verify", "-", "--headers-file", str(headers), "--json", stdin=body, env=ENV)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["type"] == "user.created"
    assert summary["id"] == json.loads(signed.stdout)["svix-id"]
    assert KAT_SECRET[6:] not in done.stdout + done.stderr


def test_verify_a_captured_delivery_at_its_own_time(tmp_path: Path) -> None:
    old = int(time.time()) - 86400
    signer = WebhookSigner(KAT_SECRET)
    body, headers = signer.delivery("user.deleted", {"id": "user_2", "deleted": True}, timestamp=old)
    path = tmp_path / "body.json"
    path.write_bytes(body)
    flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    now = run("webhook", "verify", str(path), *flags, env=ENV)
    assert now.returncode == 1
    assert "timestamp-out-of-window" in now.stderr
    replay = run("webhook", "verify", str(path), *flags, "--at", "signed", "--payload", env=ENV)
    assert replay.returncode == 0, replay.stderr
    assert '"user_2"' in replay.stdout


def test_verify_refuses_tampering_and_wrong_secret(tmp_path: Path) -> None:
    signer = WebhookSigner(KAT_SECRET)
    body, headers = signer.delivery("user.created", {"id": "user_1"})
    path = tmp_path / "body.json"
    path.write_bytes(body.replace(b"user_1", b"user_9"))
    flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    done = run("webhook", "verify", str(path), *flags, env=ENV)
    assert done.returncode == 1
    assert done.stderr.strip() == "invalid: signature-invalid: no signature matches the signing secret"
    path.write_bytes(body)
    other = run(
        "webhook", "verify", str(path), *flags, env={"CLERK_WEBHOOK_SIGNING_SECRET": WebhookSigner().secret}
    )
    assert other.returncode == 1
    assert "signature-invalid" in other.stderr


def test_no_secret_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "body.json"
    path.write_bytes(b"{}")
    done = run("webhook", "verify", str(path))
    assert done.returncode == 78
    assert "CLERK_WEBHOOK_SIGNING_SECRET" in done.stderr
    assert (
        run("webhook", "sign", str(path), env={"CLERK_WEBHOOK_SIGNING_SECRET": "whsec_!!"}).returncode == 78
    )


def test_usage_errors(tmp_path: Path) -> None:
    assert run("webhook", "verify", str(tmp_path / "missing.json"), env=ENV).returncode == 64
    path = tmp_path / "body.json"
    path.write_bytes(b"{}")
    assert run("webhook", "verify", str(path), "-H", "no colon", env=ENV).returncode == 64
    assert run("webhook", "verify", str(path), "--at", "yesterday", env=ENV).returncode == 64
    assert run("webhook", env=ENV).returncode == 64
