"""Standard Webhooks verification: the signature by any of several secrets (rotation), and
the timestamp within a tolerance. The HMAC itself is the official `standardwebhooks`'s."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import secrets as token
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from standardwebhooks import Webhook

from relay_client.receiver.errors import InvalidSignature, MalformedWebhook, StaleTimestamp
from relay_client.receiver.events import Event, parse_event

# The Standard Webhooks specification's own tolerance, in seconds.
DEFAULT_TOLERANCE = 300.0

Secrets = str | bytes | Iterable[str | bytes]


def parse_secrets(value: Secrets) -> tuple[bytes, ...]:
    """Keys from `whsec_<base64>` strings (a space-separated list is several, as in
    RELAY_WEBHOOK_SECRET) or raw bytes. Pure."""
    items: Iterable[str | bytes] = (
        value.split()
        if isinstance(value, str)
        else ([value] if isinstance(value, bytes) else value)
    )
    keys: list[bytes] = []
    for item in items:
        if isinstance(item, bytes):
            key = item
        else:
            text = item.strip().removeprefix("whsec_")
            try:
                key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("a webhook secret is not whsec_<base64>") from None
        if not key:
            raise ValueError("a webhook secret is empty")
        keys.append(key)
    if not keys:
        raise ValueError("no webhook secret given")
    return tuple(keys)


@dataclasses.dataclass(frozen=True)
class Verified:
    webhook_id: str
    timestamp: int
    body: bytes


def _signature(key: bytes, webhook_id: str, timestamp: int, text: str) -> str:
    """`v1,<base64>` for one key, computed by the official library."""
    return Webhook(key).sign(webhook_id, datetime.fromtimestamp(timestamp, UTC), text)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise MalformedWebhook(f"the {name} header is missing")
    return value


class Verifier:
    """Checks deliveries against every secret given: during a rotation give the old and the
    new one (the relay signs with each of its own, so either side may rotate first)."""

    def __init__(
        self,
        secrets: Secrets,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = parse_secrets(secrets)
        self._tolerance = tolerance
        self._clock = clock

    def __repr__(self) -> str:
        return f"Verifier({len(self._keys)} secret(s), tolerance={self._tolerance})"

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Verified:
        """The delivery's id and timestamp, if a signature matches; raises a `WebhookError`."""
        lowered = {k.lower(): v for k, v in headers.items()}
        webhook_id = _header(lowered, "webhook-id")
        stamp = _header(lowered, "webhook-timestamp")
        offered = _header(lowered, "webhook-signature")
        if not stamp.isdigit():
            raise MalformedWebhook("webhook-timestamp is not unix seconds")
        timestamp = int(stamp)
        if abs(self._clock() - timestamp) > self._tolerance:
            raise StaleTimestamp("webhook-timestamp is outside the tolerance")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedWebhook("the body is not UTF-8") from None
        passed = [part.encode() for part in offered.split() if part.startswith("v1,")]
        for key in self._keys:
            expected = _signature(key, webhook_id, timestamp, text).encode()
            if any(hmac.compare_digest(expected, sig) for sig in passed):
                return Verified(webhook_id, timestamp, body)
        raise InvalidSignature("no signature matches")

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Event:
        """Verify, then read the delivery as a typed event."""
        return parse_event(self.verify(body, headers).webhook_id, body)


def sign(
    secrets: Secrets,
    body: bytes,
    webhook_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The headers the relay would send with `body`: for testing a receiver of your own."""
    webhook_id = webhook_id or "msg_" + token.token_hex(12)
    timestamp = int(time.time()) if timestamp is None else timestamp
    text = body.decode("utf-8")
    signatures = [_signature(k, webhook_id, timestamp, text) for k in parse_secrets(secrets)]
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
