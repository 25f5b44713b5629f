"""What `relay.metrics` keeps in Redis and reads back: the shared counters and the
queue depths, so that the metrics module names no key of its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from redis.asyncio import Redis

from relay.store import keys
from relay.store.breaker import STATE_TTL
from relay.store.redis import to_ms


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


async def add_counts(redis: Redis, counts: Mapping[str, int], sums: Mapping[str, float]) -> None:
    """Add one process's counts to the shared ones, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for field, value in counts.items():
            pipe.hincrby(keys.METRICS, field, value)
        for field, total in sums.items():
            pipe.hincrbyfloat(keys.METRICS, field, total)
        await pipe.execute()


async def snapshot(redis: Redis, now: float) -> Snapshot:
    now_ms = to_ms(now)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS)
        pipe.zcard(keys.DUE)
        pipe.zcount(keys.DUE, "-inf", now_ms)
        pipe.zcard(keys.DELIVERY_DUE)
        pipe.zcount(keys.DELIVERY_DUE, "-inf", now_ms)
        pipe.get(keys.UPSTREAM_PAUSED)
        pipe.get(keys.UPSTREAM_UNAUTHORIZED)
        pipe.zcount(keys.HELD_RECEIVERS, now_ms - to_ms(STATE_TTL), "+inf")
        pipe.smembers(keys.DUE_TENANTS)
        (
            counters,
            tracked,
            due,
            deliveries,
            deliveries_due,
            paused,
            unauthorized,
            held,
            due_tenants,
        ) = await pipe.execute()
    tenants = sorted(due_tenants)
    counts: list[int] = []
    if tenants:
        async with redis.pipeline(transaction=False) as pipe:
            for tenant in tenants:
                pipe.zcount(keys.tenant_due(tenant), "-inf", now_ms)
            counts = [int(c) for c in await pipe.execute()]
    return Snapshot(
        counters=counters,
        tracked=int(tracked),
        due=int(due),
        deliveries=int(deliveries),
        deliveries_due=int(deliveries_due),
        paused=bool(paused) and int(paused) > now_ms,
        unauthorized=bool(unauthorized),
        held_receivers=int(held),
        due_per_tenant=list(zip(tenants, counts, strict=True)),
    )
