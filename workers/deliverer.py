"""The delivery loop: claim due webhook attempts, send them, record how each went."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from relay.core.retry import decide
from relay.delivery import WebhookSender
from relay.metrics import Recorder
from relay.store import ClaimedDelivery, DeliveryQueue
from relay.store.deliveries import Finish
from workers.batching import BatchWriter
from workers.poller import ERROR_SLEEP, IDLE_SLEEP, _sleep_unless

logger = logging.getLogger("relay.worker.deliverer")


class Deliverer:
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
        self.queue = queue
        self.recorder = recorder
        self.sender = sender
        self.schedule = schedule
        self.lease = lease
        self.concurrency = concurrency
        self.in_flight = 0
        self.writer: BatchWriter[Finish] = BatchWriter(self._write)

    async def run(self, stopping: asyncio.Event) -> None:
        # The writer has its own stop: it must outlive the calls still in flight.
        writer_stop = asyncio.Event()
        writer = asyncio.create_task(self.writer.run(writer_stop))
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not stopping.is_set():
                free = self.concurrency - self.in_flight
                if free <= 0:
                    await asyncio.sleep(0.005)
                    continue
                try:
                    claimed = await self.queue.claim(min(free, 500), self.lease, time.time())
                except Exception as exc:
                    logger.warning("claim failed: %s", exc)
                    await _sleep_unless(stopping, ERROR_SLEEP)
                    continue
                for item in claimed:
                    self.in_flight += 1
                    task = asyncio.create_task(self._deliver(item))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if len(claimed) < min(free, 500):
                    await _sleep_unless(stopping, IDLE_SLEEP)
        finally:
            if tasks:
                await asyncio.wait(tasks, timeout=self.sender.timeout + 1)
            writer_stop.set()
            await writer

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        try:
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
            logger.info(
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
        except Exception:
            logger.exception("delivery %s failed unexpectedly", delivery.id)
        finally:
            self.in_flight -= 1

    async def _write(self, finishes: list[Finish]) -> None:
        await self.queue.finish(finishes, time.time())
