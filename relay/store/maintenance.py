"""Housekeeping that keeps Redis bounded: what expiry alone cannot reach."""

from __future__ import annotations

from relay.store import keys, scripts
from relay.store.calls import Call, run, script
from relay.store.quota import Quota
from relay.store.redis import Client, to_ms

TRIM_BATCH = 1000  # listing entries one call trims at most, so no call holds Redis long


async def sweep(redis: Client, *, now: float, task_deadline: float, retention: float) -> int:
    """Trim tenants' listings of entries whose tasks have expired, and give back the
    quota places of tasks no longer tracked; returns how many entries and places went.

    A task is final by its deadline and expires `retention` after that, so a
    listing entry older than both is certainly stale. A place in a tenant's quota
    is held for nothing when a process died between the steps that take and give
    it (`Registry.register`, the end of a task): `Quota.recount` mends it.
    """
    trim = script(redis, scripts.SWEEP)
    before = to_ms(now - task_deadline - retention)
    failed_before = to_ms(now - retention)
    pending = sorted(await redis.smembers(keys.TENANTS))  # type: ignore[misc]
    tenants = list(pending)
    trimmed = 0
    while pending:
        calls = [
            Call(
                trim,
                [keys.tenant_tasks(tenant), keys.failed_deliveries(tenant)],
                [before, failed_before, TRIM_BATCH],
            )
            for tenant in pending
        ]
        replies = await run(redis, calls)
        trimmed += sum(int(listed) + int(failed) for listed, failed in replies)
        pending = [
            t for t, (listed, _) in zip(pending, replies, strict=True) if int(listed) >= TRIM_BATCH
        ]
    quota = Quota(redis)
    for tenant in tenants:
        trimmed += await quota.recount(tenant)
    return trimmed
