"""The receiver kit against the official `standardwebhooks` package, both ways, and against
the relay's own signing with several secrets (a rotation)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from relay_client.receiver import (
    InvalidSignature,
    MalformedWebhook,
    StaleTimestamp,
    TaskProgress,
    TaskSucceeded,
    Verifier,
    parse_secrets,
    sign,
)
from standardwebhooks import Webhook, WebhookVerificationError

from relay.core.signing import headers as relay_headers
from tests.kit.test_models import TASK

OLD = "whsec_" + base64.b64encode(b"the old secret, 32 bytes long..!").decode()
NEW = "whsec_" + base64.b64encode(b"the new secret, also 32 bytes!!!").decode()
OTHER = "whsec_" + base64.b64encode(b"someone else's secret").decode()
BODY = json.dumps({"type": "task.succeeded", "timestamp": "2026-11-29T10:00:06Z", "data": TASK})
NOW = 1_800_000_000


def official(secret: str, body: str, msg_id: str = "msg_1", at: int = NOW) -> dict[str, str]:
    """Headers as the official library signs them."""
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(at, UTC), body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signature}


def verifier(*secrets: str, tolerance: float = 300) -> Verifier:
    return Verifier(" ".join(secrets), tolerance=tolerance, clock=lambda: NOW)


def test_the_kit_accepts_what_the_official_library_signs() -> None:
    verified = verifier(OLD).verify(BODY.encode(), official(OLD, BODY))
    assert (verified.webhook_id, verified.timestamp) == ("msg_1", NOW)


def test_the_official_library_accepts_what_the_kit_signs() -> None:
    headers = sign(OLD, BODY.encode(), webhook_id="msg_7")
    assert Webhook(OLD).verify(BODY, headers) == json.loads(BODY)
    rotated = sign(f"{OLD} {NEW}", BODY.encode())
    assert len(rotated["webhook-signature"].split()) == 2
    for secret in (OLD, NEW):
        Webhook(secret).verify(BODY, rotated)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(BODY, rotated)


def test_the_kit_accepts_the_relays_signatures_with_either_secret_of_a_rotation() -> None:
    headers = relay_headers(parse_secrets(f"{OLD} {NEW}"), "msg_r", NOW, BODY.encode())
    for secrets in ([OLD], [NEW], [OTHER, NEW], [NEW, OLD]):
        assert verifier(*secrets).verify(BODY.encode(), headers).webhook_id == "msg_r"
    with pytest.raises(InvalidSignature):
        verifier(OTHER).verify(BODY.encode(), headers)


Case = tuple[str, bytes, dict[str, str], type[Exception]]


def tampered(now: int) -> list[Case]:
    """Deliveries signed at `now` and then changed, or signed at the wrong time."""
    good = official(OLD, BODY, at=now)
    body = BODY.encode()

    def without(name: str) -> dict[str, str]:
        return {k: v for k, v in good.items() if k != name}

    v2 = "v2," + good["webhook-signature"][3:]
    return [
        ("body changed", body.replace(b"midjourney", b"midjourneY"), good, InvalidSignature),
        ("body extended", body + b" ", good, InvalidSignature),
        ("id changed", body, {**good, "webhook-id": "msg_2"}, InvalidSignature),
        ("timestamp moved", body, {**good, "webhook-timestamp": str(now + 1)}, InvalidSignature),
        ("another secret", body, official(OTHER, BODY, at=now), InvalidSignature),
        ("v2 scheme", body, {**good, "webhook-signature": v2}, InvalidSignature),
        ("garbage signature", body, {**good, "webhook-signature": "v1,xx!!"}, InvalidSignature),
        ("empty signature", body, {**good, "webhook-signature": ""}, MalformedWebhook),
        ("no id", body, without("webhook-id"), MalformedWebhook),
        ("no timestamp", body, without("webhook-timestamp"), MalformedWebhook),
        ("no signature", body, without("webhook-signature"), MalformedWebhook),
        ("timestamp not a number", body, {**good, "webhook-timestamp": "soon"}, MalformedWebhook),
        ("too old", body, official(OLD, BODY, at=now - 301), StaleTimestamp),
        ("too new", body, official(OLD, BODY, at=now + 301), StaleTimestamp),
        ("not utf-8", b"\xff" + body, good, MalformedWebhook),
    ]


@pytest.mark.parametrize(("case", "body", "headers", "error"), tampered(NOW))
def test_tampering_is_refused(
    case: str, body: bytes, headers: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        verifier(OLD).verify(body, headers)


@pytest.mark.parametrize("case", [c[0] for c in tampered(NOW)])
def test_the_official_library_refuses_the_same(case: str) -> None:
    """What the kit refuses, the official library refuses too (at its own clock)."""
    cases = {c[0]: c for c in tampered(int(time.time()))}
    _, body, headers, _ = cases[case]
    with pytest.raises((WebhookVerificationError, ValueError)):  # its own errors, or a crash
        Webhook(OLD).verify(body, headers)


@pytest.mark.parametrize(
    ("skew", "accepted"), [(-300, True), (300, True), (-301, False), (301, False), (0, True)]
)
def test_the_tolerance_is_inclusive_both_ways(skew: int, accepted: bool) -> None:
    headers = official(OLD, BODY, at=NOW + skew)
    if accepted:
        verifier(OLD).verify(BODY.encode(), headers)
    else:
        with pytest.raises(StaleTimestamp):
            verifier(OLD).verify(BODY.encode(), headers)


def test_a_wider_tolerance_is_the_receivers_choice() -> None:
    verifier(OLD, tolerance=3600).verify(BODY.encode(), official(OLD, BODY, at=NOW - 3000))


def test_header_names_are_case_insensitive() -> None:
    headers = {k.upper(): v for k, v in official(OLD, BODY).items()}
    assert verifier(OLD).verify(BODY.encode(), headers).webhook_id == "msg_1"


def test_receive_types_the_event() -> None:
    event = verifier(OLD).receive(BODY.encode(), official(OLD, BODY))
    assert isinstance(event, TaskSucceeded)
    assert event.id == "msg_1" and event.type == "task.succeeded"
    assert event.task.result.grid_image == "https://cdn.example/grid.png"
    progress = json.dumps(
        {"type": "task.progress", "timestamp": "2026-11-29T10:00:01Z", "data": TASK}
    )
    assert isinstance(
        verifier(OLD).receive(progress.encode(), official(OLD, progress)), TaskProgress
    )


@pytest.mark.parametrize(
    "value",
    ["", "   ", "whsec_", "whsec_!!!notbase64", [b""], []],
)
def test_bad_secrets_are_refused_at_once(value: object) -> None:
    with pytest.raises(ValueError):
        parse_secrets(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (OLD, 1),
        (f"{OLD} {NEW}", 2),
        (f"  {OLD}\n{NEW} ", 2),
        ([OLD, NEW], 2),
        (b"raw key", 1),
        (OLD.removeprefix("whsec_"), 1),
    ],
)
def test_secrets(value: object, count: int) -> None:
    assert len(parse_secrets(value)) == count  # type: ignore[arg-type]


def test_the_verifier_does_not_show_its_secrets() -> None:
    text = repr(verifier(OLD, NEW))
    assert OLD not in text and "whsec" not in text and "2 secret" in text
