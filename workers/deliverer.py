"""The delivery loop: claim due webhook attempts, send them, record how each went."""

from __future__ import annotations

import logging
import random
import time

from relay.core.retry import decide
from relay.delivery import WebhookSender
from relay.metrics import Recorder
from relay.store import ClaimedDelivery, DeliveryQueue
from relay.store.deliveries import Finish
from workers.claim_loop import ClaimLoop

logger = logging.getLogger("relay.worker.deliverer")


class Deliverer(ClaimLoop[ClaimedDelivery, Finish]):
    name = "deliverer"
    # Events made by another worker process are found by claiming; keep that quick.
    idle_sleep = 0.02

    def __init__(
        self,
        queue: DeliveryQueue,
        sender: WebhookSender,
        *,
        schedule: tuple[float, ...],
        lease: float,
        concurrency: int,
        recorder: Recorder,
    ) -> None:
        super().__init__(concurrency=concurrency, call_timeout=sender.timeout)
        self.queue = queue
        self.sender = sender
        self.schedule = schedule
        self.lease = lease
        self.recorder = recorder

    async def claim(self, limit: int) -> list[ClaimedDelivery]:
        return await self.queue.claim(limit, self.lease, time.time())

    async def handle(self, delivery: ClaimedDelivery) -> None:
        if delivery.orphaned or delivery.superseded:
            # Deleted registration, expired event, or a progress event the final one replaced.
            self.recorder.inc("relay_deliveries_total", "drop")
            self.writer.add(Finish(delivery, "drop"))
            return
        attempt = await self.sender.send(delivery)
        decision = decide(
            attempt.status_code,
            delivery.attempt + 1,
            self.schedule,
            retry_after=attempt.retry_after,
            jitter=random.random(),
        )
        ending = decision.ending
        now = time.time()
        next_due = None if decision.delay is None else now + decision.delay
        self.recorder.inc("relay_deliveries_total", ending)
        self.recorder.observe("relay_delivery_duration_seconds", attempt.duration_ms / 1000)
        if ending == "delivered" and delivery.event is not None:
            self.recorder.observe("relay_delivery_latency_seconds", now - delivery.event.at)
        # Accepted attempts are counted in metrics; the log keeps what needs a look.
        logger.log(
            logging.DEBUG if ending == "delivered" else logging.INFO,
            "webhook attempt",
            extra={
                "delivery_id": delivery.id,
                "webhook_id": delivery.webhook_id,
                "event": delivery.type,
                "task_id": delivery.task_id,
                "tenant": delivery.tenant,
                "attempt": delivery.attempt + 1,
                "status_code": attempt.status_code,
                "error": attempt.error,
                "outcome": ending,
            },
        )
        self.writer.add(Finish(delivery, ending, attempt.record(), next_due))

    async def write(self, finishes: list[Finish]) -> None:
        await self.queue.finish(finishes, time.time())
