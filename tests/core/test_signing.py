"""Webhook signatures (relay.core.signing) against the official Standard Webhooks library.

CONTRACT.md: `webhook-id`, `webhook-timestamp`, `webhook-signature` (`v1,<base64>`, one per
secret, space-separated), "so that its official libraries verify them as they are".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relay.core.signing import headers, sign

SECRETS = [
    b"test-secret-0123456789abcdef",
    bytes(range(32)),
    b"\xff" * 24,
    hashlib.sha256(b"rotation").digest(),
]
BODY = json.dumps(
    {
        "type": "task.succeeded",
        "timestamp": "2025-11-29T10:00:00.000Z",
        "data": {"task_id": "550e8400-e29b-41d4-a716-446655440000", "metadata": {"k": "\u00e9"}},
    },
    ensure_ascii=False,
    separators=(",", ":"),
).encode()
WEBHOOK_ID = "evt_0123456789abcdef0123456789abcdef"


def whsec(secret: bytes) -> str:
    return "whsec_" + base64.b64encode(secret).decode()


def expected_signature(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """Computed here, independently of the product: HMAC-SHA256 over `{id}.{ts}.{body}`."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def now() -> int:
    return int(time.time())


# --- the official library verifies ------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [pytest.param(secret, id=f"secret-{i}") for i, secret in enumerate(SECRETS)],
)
def test_one_secret_verifies(secret: bytes) -> None:
    sent = headers([secret], WEBHOOK_ID, now(), BODY)
    assert Webhook(whsec(secret)).verify(BODY, sent) == json.loads(BODY)


@pytest.mark.parametrize(
    ("count", "holder"),
    [
        pytest.param(count, holder, id=f"{count}-secrets-verifier-holds-{holder}")
        for count in (2, 3, 4)
        for holder in range(count)
    ],
)
def test_each_of_several_secrets_verifies(count: int, holder: int) -> None:
    secrets = SECRETS[:count]
    sent = headers(secrets, WEBHOOK_ID, now(), BODY)
    # Rotation: a verifier holding only one of the secrets (e.g. the new one) accepts.
    assert Webhook(whsec(secrets[holder])).verify(BODY, sent) == json.loads(BODY)


def test_verifier_with_an_unrelated_secret_rejects() -> None:
    sent = headers(SECRETS[:3], WEBHOOK_ID, now(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec(b"a-secret-nobody-signed-with!")).verify(BODY, sent)


def _with(sent: dict[str, str], **changes: str) -> dict[str, str]:
    return {**sent, **{name.replace("_", "-"): value for name, value in changes.items()}}


Tamper = Callable[[bytes, dict[str, str], int], tuple[bytes, dict[str, str]]]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b, h, ts: (b + b" ", h), id="body-extra-space"),
        pytest.param(lambda b, h, ts: (b.replace(b"succeeded", b"failed"), h), id="body-changed"),
        pytest.param(lambda b, h, ts: (b"{}", h), id="body-replaced"),
        pytest.param(lambda b, h, ts: (b, _with(h, webhook_id=WEBHOOK_ID + "x")), id="id-longer"),
        pytest.param(lambda b, h, ts: (b, _with(h, webhook_id="evt_other")), id="id-other"),
        pytest.param(lambda b, h, ts: (b, _with(h, webhook_id="")), id="id-missing"),
        pytest.param(
            lambda b, h, ts: (b, _with(h, webhook_timestamp=str(ts + 1))), id="timestamp-plus-1"
        ),
        pytest.param(
            lambda b, h, ts: (b, _with(h, webhook_timestamp=str(ts - 1))), id="timestamp-minus-1"
        ),
        pytest.param(
            lambda b, h, ts: (b, _with(h, webhook_timestamp=str(ts - 3600))),
            id="timestamp-hour-old",
        ),
        pytest.param(lambda b, h, ts: (b, _with(h, webhook_signature="v1,")), id="signature-empty"),
        pytest.param(
            lambda b, h, ts: (
                b,
                _with(h, webhook_signature=h["webhook-signature"].replace("v1,", "v2,")),
            ),
            id="signature-other-version",
        ),
    ],
)
def test_tampering_is_rejected(tamper: Tamper) -> None:
    ts = now()
    body, sent = tamper(BODY, headers(SECRETS[:2], WEBHOOK_ID, ts, BODY), ts)
    for secret in SECRETS[:2]:
        with pytest.raises(WebhookVerificationError):
            Webhook(whsec(secret)).verify(body, sent)


def test_untampered_control_verifies() -> None:
    ts = now()
    sent = headers(SECRETS[:2], WEBHOOK_ID, ts, BODY)
    for secret in SECRETS[:2]:
        Webhook(whsec(secret)).verify(BODY, sent)


# --- headers ----------------------------------------------------------------------------------


def test_headers_carry_every_field() -> None:
    sent = headers(SECRETS[:3], WEBHOOK_ID, 1_764_410_400, BODY)
    assert sent["content-type"] == "application/json"
    assert sent["webhook-id"] == WEBHOOK_ID
    assert sent["webhook-timestamp"] == "1764410400"
    parts = sent["webhook-signature"].split(" ")
    assert parts == [
        expected_signature(secret, WEBHOOK_ID, 1_764_410_400, BODY) for secret in SECRETS[:3]
    ]


# --- known answers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "webhook_id", "timestamp", "body"),
    [
        pytest.param(SECRETS[0], WEBHOOK_ID, 1_764_410_400, BODY, id="task-body"),
        pytest.param(SECRETS[1], "msg_1", 0, b"{}", id="epoch-empty-object"),
        pytest.param(SECRETS[2], "evt_x", 2_000_000_000, b"", id="empty-body"),
        pytest.param(
            SECRETS[3], "evt_unicode", 1_700_000_000, '{"k":"\u2603"}'.encode(), id="utf8"
        ),
        pytest.param(b"k", "a.b.c", 1, b"x.y.z", id="dots-everywhere"),
    ],
)
def test_known_answer_vectors(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> None:
    want = expected_signature(secret, webhook_id, timestamp, body)
    assert sign([secret], webhook_id, timestamp, body) == want
    assert headers([secret], webhook_id, timestamp, body)["webhook-signature"] == want


def test_published_standard_webhooks_vector() -> None:
    # The example of the Standard Webhooks specification and its reference libraries.
    secret = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    got = sign([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
