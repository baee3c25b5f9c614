"""Every framework answers every webhook delivery of the table identically."""

from __future__ import annotations

import pytest

from clerkguard.testing import LocalIssuer, WebhookSigner

from .conftest import FRAMEWORKS, close_harness, load_factory
from .harness import WEBHOOK_SECRETS, Harness, Result
from .webhook_table import PATH, USER_ID, WEBHOOK_CASES, WebhookCase, new_id, signed, signers


def deliver(harness: Harness, case: WebhookCase, keys: dict[str, WebhookSigner], msg_id: str) -> Result:
    """Send the case's delivery (``repeat`` times) and return the last answer."""
    body, headers = case.delivery.build(keys, msg_id)
    result = harness.request("POST", PATH, headers=headers, body=body)
    for _ in range(case.repeat - 1):
        if case.resign:
            body, headers = case.delivery.build(keys, msg_id)
        result = harness.request("POST", PATH, headers=headers, body=body)
    return result


def assert_webhook_answer(case: WebhookCase, result: Result, sent: bytes) -> None:
    """The contract of one delivery: status, JSON body, no challenge, nothing echoed."""
    assert result.status == case.status, f"{case.name}: {result.status} {result.json!r}"
    assert isinstance(result.json, dict), f"{case.name}: not JSON: {result.json!r}"
    assert result.headers.get("content-type", "").startswith("application/json")
    assert "www-authenticate" not in result.headers  # a webhook is not a bearer-token request
    if case.status >= 400:
        assert {"error", "reason"} <= set(result.json) <= {"error", "reason", "detail"}
        assert result.json["error"] == "invalid_webhook"
        assert result.json["reason"] == case.reason
    elif case.handled:
        assert result.json == case.json
    else:
        assert result.json == {"status": "ignored", "reason": case.reason}
    echoed = repr(result.json) + repr(result.headers)
    for secret in WEBHOOK_SECRETS:
        assert secret.removeprefix("whsec_") not in echoed
    assert USER_ID not in echoed or case.handled  # the payload is only the handler's to answer with
    assert sent[:64].decode("latin-1") not in echoed


def run_case(harness: Harness, case: WebhookCase) -> None:
    """One case, with the same-id follow-up for refused and ignored deliveries."""
    keys = signers()
    msg_id = new_id()
    body, _ = case.delivery.build(keys, msg_id)
    result = deliver(harness, case, keys, msg_id)
    assert_webhook_answer(case, result, body)
    if case.handled or case.repeat > 1:
        return
    # Neither the handler nor the dedupe memory saw the refused/ignored delivery:
    # the genuine event with the same id reaches the handler exactly once.
    follow_up = deliver(harness, WebhookCase("follow-up", signed(), 200), keys, msg_id)
    assert follow_up.status == 200
    assert follow_up.json == {"type": "user.created", "user_id": USER_ID, "calls": 1}


@pytest.mark.parametrize("case", WEBHOOK_CASES, ids=str)
def test_webhook_table(case: WebhookCase, harness: Harness) -> None:
    run_case(harness, case)


def run_webhook_table(harness: Harness, workers: int = 1) -> None:
    """The whole webhook table (end-to-end tests, over HTTP).

    With several worker processes an in-memory dedupe is per process (the
    docs say so), so the duplicate cases only run against a single worker.
    """
    for case in WEBHOOK_CASES:
        if case.repeat > 1 and workers > 1:
            continue
        run_case(harness, case)


def test_webhook_harnesses_agree(table_issuer: LocalIssuer) -> None:
    """Every installed framework gives the same (status, reason) list for the whole table."""
    available = []
    for name in FRAMEWORKS:
        try:
            available.append((name, load_factory(name)))
        except pytest.skip.Exception:
            continue
    if len(available) < 2:
        pytest.skip("fewer than two frameworks installed")
    answers: dict[str, list[tuple[str, int, str | None]]] = {}
    for name, factory in available:
        auth = table_issuer.auth()
        built = factory(auth)
        try:
            keys = signers()
            answers[name] = [
                (case.name, r.status, r.json.get("reason"))
                for case in WEBHOOK_CASES
                for r in [deliver(built, case, keys, new_id())]
            ]
        finally:
            close_harness(built)
            auth.close()
    first, *others = answers
    for name in others:
        assert answers[name] == answers[first], f"{name} disagrees with {first}"
    assert answers[first][0] == ("valid", 200, None)
