"""The delivery queue: one outbox per subscription, its head claimed under a lease."""

from __future__ import annotations

import dataclasses
import itertools
import re

from relay.core.model import Ending, Event, Registration
from relay.store import keys, scripts
from relay.store.calls import Call, run, script
from relay.store.codec import dump_attempt
from relay.store.record import StoredDelivery, TaskRecord, read_delivery_records
from relay.store.redis import Client, to_ms
from relay.store.shards import (
    claim_over_shards,
    claimed_ids,
    drop_from_queue,
    due_shards,
    grouped,
)

# Every delivery id has the shape the fan-out script gives it ('dlv_', its task's
# compact id, 8 hex digits of a SHA-1: keys.delivery_id; the compact id's last
# character holds 2 bits). Anything else names no delivery.
DELIVERY_ID = re.compile(r"dlv_[A-Za-z0-9_-]{21}[AQgw][0-9a-f]{8}")


def is_delivery_id(value: str) -> bool:
    return DELIVERY_ID.fullmatch(value) is not None


@dataclasses.dataclass(frozen=True)
class ClaimedDelivery(StoredDelivery):
    """A delivery as a claim hands it to the deliverer: with what it sends."""

    registration: Registration | None = None  # None once the registration was deleted
    event: Event | None = None
    lease: int = 0

    @property
    def orphaned(self) -> bool:
        """Its registration was deleted (or replaced) or its event expired: send nothing."""
        return (
            self.registration is None
            or self.registration.rid != self.rid
            or self.registration.webhook_url is None
            or self.event is None
        )


@dataclasses.dataclass(frozen=True)
class Finish:
    delivery: ClaimedDelivery
    ending: Ending
    attempt: dict[str, object] | None = None
    next_due: float | None = None  # for a retry


class DeliveryQueue:
    """The delivery queue, one sorted set per shard, claimed like the poll schedule."""

    def __init__(self, redis: Client, *, retention: float) -> None:
        self.redis = redis
        self.retention = max(1, to_ms(retention))  # ms: settings accept fractions
        self._claim = script(redis, scripts.CLAIM_DELIVERIES)
        self._finish = script(redis, scripts.FINISH_DELIVERY)
        self._turn = itertools.count()

    async def claim(self, limit: int, lease: float, now: float) -> list[ClaimedDelivery]:
        # An idle deliverer claims every few tens of milliseconds: a count per shard
        # first costs Redis a fraction of what a claim script on every shard does.
        due = await due_shards(self.redis, keys.delivery_due, to_ms(now))
        if not due:
            return []

        async def take(shares: dict[int, int]) -> list[tuple[list[ClaimedDelivery], bool]]:
            calls = [
                Call(self._claim, [keys.delivery_due(shard)], [to_ms(now), n, to_ms(lease)])
                for shard, n in shares.items()
            ]
            found = await self._read_claimed(list(shares), await run(self.redis, calls))
            # A shard that gave its whole share may have more.
            return [(f, len(f) >= n) for f, n in zip(found, shares.values(), strict=True)]

        claimed, _more = await claim_over_shards(limit, self._turn, take, due)
        return claimed

    async def finish(self, finishes: list[Finish], now: float) -> list[str]:
        """Record attempts in one script call per shard; each answers 'ok', 'lost' or
        'missing'."""
        if not finishes:
            return []
        by_shard = grouped(
            range(len(finishes)), lambda i: keys.delivery_shard(finishes[i].delivery.id)
        )
        calls = []
        for shard, indexes in by_shard:
            args: list[str | int | float] = [to_ms(now), self.retention]
            call_keys = [keys.delivery_due(shard)]
            for index in indexes:
                f = finishes[index]
                task_id, key = keys.delivery_task(f.delivery.id)
                call_keys.append(keys.task(task_id))
                args += [
                    len(call_keys),  # the index in KEYS of the task's record
                    keys.compact_id(task_id),
                    key,
                    f.delivery.lease,
                    f.ending,
                    "" if f.next_due is None else to_ms(f.next_due),
                    "" if f.attempt is None else dump_attempt(f.attempt),
                ]
            calls.append(Call(self._finish, call_keys, args))
        answers = [""] * len(finishes)
        failed: list[tuple[str, str]] = []  # (tenant, delivery id)
        for (_, indexes), (replies, failures) in zip(
            by_shard, await run(self.redis, calls), strict=True
        ):
            for index, reply in zip(indexes, replies, strict=True):
                answers[index] = str(reply)
            failed += [_split_pair(entry) for entry in failures]
        if failed:
            async with self.redis.pipeline(transaction=False) as pipe:
                for tenant, pairs in grouped(failed, lambda p: p[0]):
                    ids = dict.fromkeys((did for _, did in pairs), to_ms(now))
                    pipe.zadd(keys.failed_deliveries(tenant), ids)
                await pipe.execute()
        return answers

    async def _read_claimed(
        self, shards: list[int], replies: list[list[object] | None]
    ) -> list[list[ClaimedDelivery]]:
        """The claimed deliveries, read from their tasks' records in one pipeline; those
        whose record no longer holds them leave the queue."""
        taken = claimed_ids(shards, list(replies))
        records = await read_delivery_records(self.redis, [d for _, _, ids in taken for d in ids])
        claimed: list[list[ClaimedDelivery]] = []
        missing: list[tuple[int, str]] = []
        for shard, lease, ids in taken:
            found: list[ClaimedDelivery] = []
            for did in ids:
                delivery = _claimed(records[did], did, lease)
                if delivery is None:
                    missing.append((shard, did))
                else:
                    found.append(delivery)
            claimed.append(found)
        await drop_from_queue(self.redis, keys.delivery_due, missing)
        return claimed

    async def due_count(self) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(keys.SHARDS):
                pipe.zcard(keys.delivery_due(shard))
            return sum(int(n) for n in await pipe.execute())


def _claimed(record: TaskRecord | None, delivery_id: str, lease: int) -> ClaimedDelivery | None:
    stored = record.delivery(delivery_id) if record else None
    if record is None or stored is None:
        return None
    return ClaimedDelivery(
        **vars(stored),
        registration=record.registration(stored.tenant),
        event=record.event(stored.event_id),
        lease=lease,
    )


def _split_pair(entry: object) -> tuple[str, str]:
    """'<tenant> <delivery id>' as FINISH_DELIVERY answers it (a tenant may hold spaces)."""
    tenant, _, delivery_id = str(entry).rpartition(" ")
    return tenant, delivery_id
