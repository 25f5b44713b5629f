"""What `relay.metrics` keeps in Redis and reads back: the shared counters and the
queue depths, so that the metrics module names no key of its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from relay.store import keys
from relay.store.breaker import STATE_TTL
from relay.store.redis import Client, to_ms


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Every process's counters added up, and the backlogs as they are now."""

    counters: dict[str, str]  # field -> value, fields as `relay.metrics` names them
    tracked: int  # tasks being polled
    due: int  # tasks due for a poll now
    deliveries: int  # webhook attempts scheduled
    deliveries_due: int  # webhook attempts due now
    paused: bool  # a 429's Retry-After holds every worker's calls
    unauthorized: bool  # the upstream refuses the API key
    held_receivers: int  # receivers the circuit breaker holds
    due_per_tenant: list[tuple[str, int]]  # (tenant, tasks due now), by tenant name


async def add_counts(redis: Client, counts: Mapping[str, int], sums: Mapping[str, float]) -> None:
    """Add one process's counts to the shared ones, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for field, value in counts.items():
            pipe.hincrby(keys.METRICS, field, value)
        for field, total in sums.items():
            pipe.hincrbyfloat(keys.METRICS, field, total)
        await pipe.execute()


async def snapshot(redis: Client, now: float) -> Snapshot:
    now_ms = to_ms(now)
    shards = range(keys.SHARDS)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS)
        pipe.get(keys.UPSTREAM_PAUSED)
        pipe.get(keys.UPSTREAM_UNAUTHORIZED)
        pipe.zcount(keys.HELD_RECEIVERS, now_ms - to_ms(STATE_TTL), "+inf")
        for shard in shards:
            pipe.zrangebyscore(keys.due_heads(shard), "-inf", now_ms)
            pipe.zcard(keys.delivery_due(shard))
            pipe.zcount(keys.delivery_due(shard), "-inf", now_ms)
            pipe.hgetall(keys.fair_masks(shard))
            for bucket in keys.due_buckets(shard):
                pipe.zcard(bucket)
        counters, paused, unauthorized, held, *per_shard = await pipe.execute()
    tracked = deliveries = deliveries_due = 0
    due_buckets: list[str] = []
    due_tenants: list[tuple[str, str]] = []  # (part of a fair queue, tenant)
    width = 4 + keys.DUE_BUCKETS
    for shard in shards:
        heads, s_deliveries, s_deliveries_due, tenants, *sizes = per_shard[
            shard * width : (shard + 1) * width
        ]
        tracked += sum(int(n) for n in sizes)
        due_buckets += [keys.due_buckets(shard)[int(b)] for b in heads]
        deliveries += int(s_deliveries)
        deliveries_due += int(s_deliveries_due)
        due_tenants += [
            (keys.fair_buckets(shard)[part], tenant)
            for tenant, mask in tenants.items()
            for part, bit in enumerate(mask)
            if bit == "1"
        ]
    due = 0
    per_tenant: dict[str, int] = {}
    if due_buckets or due_tenants:
        async with redis.pipeline(transaction=False) as pipe:
            for bucket in due_buckets:
                pipe.zcount(bucket, "-inf", now_ms)
            for part, tenant in due_tenants:
                low, high = keys.fair_member_bounds(tenant, now_ms)
                pipe.zlexcount(part, low, high)  # type: ignore[no-untyped-call]
            counts = await pipe.execute()
        due = sum(int(n) for n in counts[: len(due_buckets)])
        for (_, tenant), count in zip(due_tenants, counts[len(due_buckets) :], strict=True):
            per_tenant[tenant] = per_tenant.get(tenant, 0) + int(count)
    return Snapshot(
        counters=counters,
        tracked=tracked,
        due=due,
        deliveries=deliveries,
        deliveries_due=deliveries_due,
        paused=bool(paused) and int(paused) > now_ms,
        unauthorized=bool(unauthorized),
        held_receivers=int(held),
        due_per_tenant=sorted(per_tenant.items()),
    )
