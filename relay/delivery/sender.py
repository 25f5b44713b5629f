"""One webhook attempt: the signed POST and its record."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from relay.core import signing
from relay.core.resource import rfc3339, webhook_body
from relay.outbound import Transport, TransportError
from relay.store.deliveries import ClaimedDelivery
from relay.upstream.client import header, parse_retry_after

EXCERPT_BYTES = 256  # how much of a receiver's answer the attempt log keeps


@dataclasses.dataclass(frozen=True)
class Attempt:
    at: float
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str | None
    retry_after: float | None

    def record(self) -> dict[str, Any]:
        """The attempt as the deliveries listing shows it."""
        return {
            "at": rfc3339(self.at),
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "response": self.response,
        }


class WebhookSender:
    def __init__(self, transport: Transport, *, secrets: tuple[bytes, ...], timeout: float) -> None:
        self.transport = transport
        self.secrets = secrets
        self.timeout = timeout

    async def send(self, delivery: ClaimedDelivery) -> Attempt:
        assert delivery.registration is not None and delivery.event is not None
        assert delivery.registration.webhook_url is not None
        body = webhook_body(delivery.event, delivery.registration)
        started = time.time()
        clock = time.perf_counter()
        headers = signing.headers(self.secrets, delivery.webhook_id, int(started), body)
        try:
            # Only the excerpt is read: a receiver's answer is shown, never parsed, and
            # a hostile one (huge, or a compressed bomb) costs no more than that.
            reply = await self.transport.post(
                delivery.registration.webhook_url,
                body,
                headers,
                self.timeout,
                excerpt=EXCERPT_BYTES,
            )
        except TransportError as exc:
            return Attempt(started, None, f"{exc.kind}: {exc}", _ms(clock), None, None)
        excerpt = reply.body[:EXCERPT_BYTES].decode("utf-8", "replace") or None
        return Attempt(
            started,
            reply.status,
            None,
            _ms(clock),
            excerpt,
            parse_retry_after(header(reply.headers, "retry-after"), time.time()),
        )


def _ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)
