"""The delivery queue: one outbox per subscription, its head claimed under a lease."""

from __future__ import annotations

import dataclasses
import itertools
import re

from relay.core.model import Ending, Event, Registration
from relay.store import keys, scripts
from relay.store.calls import Call, run, script
from relay.store.codec import dump, load_event, load_registration
from relay.store.redis import Client, to_ms
from relay.store.shards import claim_over_shards, grouped

# Every delivery id has the shape the fan-out script gives it ('dlv_', its shard in two
# hex digits, 24 of a SHA-1: scripts._FAN_OUT). Anything else names no delivery and must
# not reach Redis: with a suffix such as `:attempts` it would name another key.
DELIVERY_ID = re.compile(r"dlv_[0-9a-f]{26}")


def is_delivery_id(value: str) -> bool:
    return DELIVERY_ID.fullmatch(value) is not None and keys.delivery_shard(value) < keys.SHARDS


@dataclasses.dataclass(frozen=True)
class ClaimedDelivery:
    id: str
    task_id: str
    tenant: str
    rid: str
    event_id: str
    type: str
    attempt: int  # attempts already made in this series
    superseded: bool
    webhook_id: str
    registration: Registration | None  # None once the registration was deleted
    event: Event | None
    lease: int
    created: int = 0  # ms
    series_start: int = 0  # ms: when this attempt series began
    fresh: bool = False  # a redelivered series not yet attempted: someone asked for it now

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

        async def take(shares: dict[int, int]) -> list[tuple[list[ClaimedDelivery], bool]]:
            calls = [
                Call(
                    self._claim,
                    keys.shard_keys(shard),
                    [keys.shard_prefix(shard), to_ms(now), n, to_ms(lease)],
                )
                for shard, n in shares.items()
            ]
            found = [_parse_claim(reply) for reply in await run(self.redis, calls)]
            # A shard that gave its whole share may have more.
            return [(f, len(f) >= n) for f, n in zip(found, shares.values(), strict=True)]

        claimed, _more = await claim_over_shards(limit, self._turn, take)
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
            args: list[str | int | float] = [keys.shard_prefix(shard), to_ms(now), self.retention]
            for index in indexes:
                f = finishes[index]
                args += [
                    f.delivery.id,
                    f.delivery.lease,
                    f.ending,
                    "" if f.next_due is None else to_ms(f.next_due),
                    "" if f.attempt is None else dump(f.attempt),
                ]
            calls.append(Call(self._finish, keys.shard_keys(shard), args))
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

    async def due_count(self) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(keys.SHARDS):
                pipe.zcard(keys.delivery_due(shard))
            return sum(int(n) for n in await pipe.execute())


def _parse_claim(reply: list[object] | None) -> list[ClaimedDelivery]:
    if not reply:
        return []
    lease_ms, flat = int(str(reply[0])), reply[1]
    assert isinstance(flat, list)
    claimed = []
    for i in range(0, len(flat), 15):
        (
            did,
            task_id,
            tenant,
            rid,
            event_id,
            etype,
            attempt,
            superseded,
            webhook_id,
            raw_reg,
            raw_event,
            raw_metadata,
            created,
            series_start,
            fresh,
        ) = flat[i : i + 15]
        claimed.append(
            ClaimedDelivery(
                id=did,
                task_id=task_id,
                tenant=tenant,
                rid=rid,
                event_id=event_id,
                type=etype,
                attempt=int(attempt or 0),
                superseded=superseded == "1",
                webhook_id=webhook_id,
                registration=(
                    load_registration(raw_reg, tenant, task_id, raw_metadata) if raw_reg else None
                ),
                event=load_event(raw_event) if raw_event else None,
                lease=lease_ms,
                created=int(created),
                series_start=int(series_start),
                fresh=fresh == "1",
            )
        )
    return claimed


def _split_pair(entry: object) -> tuple[str, str]:
    """'<tenant> <delivery id>' as FINISH_DELIVERY answers it (a tenant may hold spaces)."""
    tenant, _, delivery_id = str(entry).rpartition(" ")
    return tenant, delivery_id
