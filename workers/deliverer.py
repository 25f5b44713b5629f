"""The delivery loop: claim due webhook attempts, send them, record how each went.

Each claimed delivery first asks its receiver's breaker for a slot
(`relay.store.breaker`): one that cannot go now is parked there without
spending an attempt, so a slow, dead or held receiver never takes more than
its own bound of this loop's slots; and no tenant takes more than its share of
them (`relay.delivery.shares`), however many receivers its deliveries name.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import time

from relay.core.retry import decide
from relay.delivery import WebhookSender
from relay.delivery.receivers import origin_of, verdict
from relay.delivery.shares import TenantSlots
from relay.metrics import Recorder
from relay.store import ClaimedDelivery, DeliveryQueue
from relay.store.breaker import HOLD_AFTER, Candidate, Receivers, Report
from relay.store.deliveries import Finish
from workers.claim_loop import ClaimLoop

logger = logging.getLogger("relay.worker.deliverer")

# Seconds one turn may keep claiming while whole batches are parked: a big parked
# backlog due at once must not cost an idle sleep per batch before others are reached.
CLAIM_BUDGET = 0.1


@dataclasses.dataclass(frozen=True)
class Done:
    finish: Finish
    report: Report | None = None  # for the receiver's breaker, when an attempt was made


class Deliverer(ClaimLoop[ClaimedDelivery, Done]):
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
        hold_after: int = HOLD_AFTER,
    ) -> None:
        super().__init__(concurrency=concurrency, call_timeout=sender.timeout)
        self.queue = queue
        self.sender = sender
        self.schedule = schedule
        self.span = sum(schedule)  # a held delivery older than this ends failed
        self.lease = lease
        self.recorder = recorder
        self.receivers = Receivers(queue.redis, hold_after=hold_after)
        self.shares = TenantSlots(concurrency)

    async def claim(self, limit: int) -> list[ClaimedDelivery]:
        await self._release()
        ready: list[ClaimedDelivery] = []
        started = time.monotonic()
        while True:
            wanted = limit - len(ready)
            now = time.time()
            claimed = await self.queue.claim(wanted, self.lease, now)
            ready += await self._admit(claimed, now)
            if len(claimed) < wanted or len(ready) >= limit:
                return ready
            if time.monotonic() - started > CLAIM_BUDGET:
                return ready

    async def _release(self) -> None:
        """Make due the deliveries parked over their tenant's share that fit in it now.

        Done here, before each claim, rather than when attempts end: a share also
        grows when another tenant's work here ends, with no attempt of its own ending.
        """
        release = self.shares.releasable(time.monotonic())
        if release:
            recorded = await self.receivers.record([], time.time(), release=release)
            self.shares.drained(recorded.drained)

    async def _admit(self, claimed: list[ClaimedDelivery], now: float) -> list[ClaimedDelivery]:
        asking: list[ClaimedDelivery] = []
        for delivery in claimed:
            if delivery.orphaned or delivery.superseded:
                # Deleted registration, expired event, or a progress event the final one replaced.
                self.recorder.inc("relay_deliveries_total", "drop")
                self.writer.add(Done(Finish(delivery, "drop")))
            else:
                asking.append(delivery)
        room = self.shares.room((d.tenant for d in asking), time.monotonic())
        answers = await self.receivers.admit(
            [_candidate(d) for d in asking], now, span=self.span, room=room
        )
        ready = []
        for delivery, answer in zip(asking, answers, strict=True):
            if answer in ("go", "probe"):
                self.shares.started(delivery.tenant)
                ready.append(delivery)
            elif answer in ("held", "busy", "share"):
                self.recorder.inc("relay_receiver_deferred_total", answer)
                if answer == "share":
                    self.shares.parked(delivery.tenant)
            elif answer == "expired":
                self.recorder.inc("relay_deliveries_expired_total")
                logger.info(
                    "webhook given up: its receiver is held and the retry span has passed",
                    extra=_fields(delivery),
                )
                self.writer.add(Done(Finish(delivery, "failed")))
        return ready

    async def handle(self, delivery: ClaimedDelivery) -> None:
        try:
            attempt = await self.sender.send(delivery)
        finally:
            self.shares.ended(delivery.tenant)
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
                **_fields(delivery),
                "attempt": delivery.attempt + 1,
                "status_code": attempt.status_code,
                "error": attempt.error,
                "outcome": ending,
            },
        )
        report = Report(_candidate(delivery), verdict(attempt.status_code, attempt.error))
        self.writer.add(Done(Finish(delivery, ending, attempt.record(), next_due), report))

    async def write(self, batch: list[Done]) -> None:
        await self.queue.finish([done.finish for done in batch], time.time())
        reports = [done.report for done in batch if done.report is not None]
        try:
            recorded = await self.receivers.record(reports, time.time())
        except Exception as exc:
            # The attempts are written; a breaker a little behind heals by its leases.
            logger.warning("receiver breaker update failed: %s", exc)
            return
        self.recorder.inc("relay_receiver_holds_total", by=recorded.holds)
        self.recorder.inc("relay_receiver_probes_total", "up", by=recorded.probes_up)
        self.recorder.inc("relay_receiver_probes_total", "down", by=recorded.probes_down)
        if recorded.released:
            self.wake.set()


def _candidate(delivery: ClaimedDelivery) -> Candidate:
    assert delivery.registration is not None and delivery.registration.webhook_url is not None
    return Candidate(
        delivery.id,
        delivery.lease,
        delivery.tenant,
        _origin_of(delivery.registration.webhook_url),
        created=delivery.created,
        series_start=delivery.series_start,
        fresh=delivery.fresh,
    )


# Asked at every admission and every attempt; a URL's receiver never changes.
_origin_of = functools.lru_cache(maxsize=4096)(origin_of)


def _fields(delivery: ClaimedDelivery) -> dict[str, object]:
    return {
        "delivery_id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "event": delivery.type,
        "task_id": delivery.task_id,
        "tenant": delivery.tenant,
    }
