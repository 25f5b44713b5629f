"""Housekeeping that keeps Redis bounded: what expiry alone cannot reach."""

from __future__ import annotations

from redis.asyncio import Redis

from relay.store import keys, scripts
from relay.store.redis import to_ms


async def sweep(redis: Redis, *, now: float, task_deadline: float, retention: float) -> int:
    """Trim tenants' listings of entries whose tasks have expired; returns how many.

    A task is final by its deadline and expires `retention` after that, so a
    listing entry older than both is certainly stale.
    """
    script = redis.register_script(scripts.SWEEP)
    before = to_ms(now - task_deadline - retention)
    trimmed = await script(args=[keys.PREFIX, before, to_ms(now - retention)])
    return int(trimmed)
