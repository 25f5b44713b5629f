"""Each tenant's quota: how many tasks it tracks at once (RELAY_TENANT_MAX_TASKS).

A count per tenant rather than a set of its tasks: a place is taken before a
registration (another slot than the task's), given back when the task ends or the
tenant deletes it, and the sweep mends what a crash between those steps left.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from relay.store import keys, scripts
from relay.store.calls import Call, run, script
from relay.store.redis import Client


class Quota:
    def __init__(self, redis: Client, max_tasks: int = 10_000) -> None:
        # Only reserve() reads max_tasks: the worker gives places back, never takes one.
        self.redis = redis
        self.max_tasks = max_tasks
        self._reserve = script(redis, scripts.RESERVE)
        self._release = script(redis, scripts.RELEASE)
        self._recount = script(redis, scripts.RECOUNT)

    async def reserve(self, tenant: str) -> bool:
        """A place for one more tracked task; False when the quota is full."""
        place = await self._reserve(keys=[keys.active_tasks(tenant)], args=[self.max_tasks])
        return bool(place == "added")

    async def release(self, tenants: Iterable[str]) -> None:
        """One place back for each tenant named (a tenant named twice gets two)."""
        counts = Counter(tenants)
        await run(
            self.redis,
            [Call(self._release, [keys.active_tasks(t)], [n]) for t, n in counts.items()],
        )

    async def held(self, tenant: str) -> int:
        """The places the tenant's tasks hold."""
        return int(await self.redis.hget(keys.active_tasks(tenant), "n") or 0)  # type: ignore[misc]

    async def recount(self, tenant: str) -> int:
        """Mend the tenant's places by its tracked tasks counted in every shard;
        returns the places given back."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(keys.SHARDS):
                pipe.hget(keys.fair_counts(shard), tenant)
            counted = sum(int(n or 0) for n in await pipe.execute())
        return int(await self._recount(keys=[keys.active_tasks(tenant)], args=[counted]))
