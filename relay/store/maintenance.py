"""Housekeeping that keeps Redis bounded: what expiry alone cannot reach."""

from __future__ import annotations

from relay.store import keys, scripts
from relay.store.calls import Call, run, script
from relay.store.record import read_records
from relay.store.redis import Client, to_ms


async def sweep(redis: Client, *, now: float, task_deadline: float, retention: float) -> int:
    """Trim tenants' listings of entries whose tasks have expired, and give back the
    quota places of tasks no longer tracked; returns how many entries went.

    A task is final by its deadline and expires `retention` after that, so a
    listing entry older than both is certainly stale. A place in a tenant's quota
    is held for nothing when a process died between the steps that take and give
    it (`Registry.register`, the end of a task): its task is final, gone, or no
    longer the tenant's.
    """
    trim = script(redis, scripts.SWEEP)
    before = to_ms(now - task_deadline - retention)
    tenants = sorted(await redis.smembers(keys.TENANTS))  # type: ignore[misc]
    calls = [
        Call(
            trim,
            [keys.tenant_tasks(tenant), keys.failed_deliveries(tenant)],
            [before, to_ms(now - retention)],
        )
        for tenant in tenants
    ]
    trimmed = sum(int(n) for n in await run(redis, calls))
    for tenant in tenants:
        trimmed += await _give_back_places(redis, tenant)
    return trimmed


async def _give_back_places(redis: Client, tenant: str) -> int:
    active = keys.active_tasks(tenant)
    stale: list[str] = []
    cursor = 0
    while True:
        cursor, members = await redis.sscan(active, cursor, count=500)
        if members:
            records = await read_records(redis, list(members))
            stale += [
                t for t, r in records.items() if r is None or not r.has(tenant) or r.final_event
            ]
        if int(cursor) == 0:
            break
    if stale:
        await redis.srem(active, *stale)  # type: ignore[misc]
    return len(stale)
