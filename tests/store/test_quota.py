"""A tenant's quota as a count of places: taken, given back, and mended by the sweep."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from relay.store import keys
from relay.store.maintenance import sweep
from relay.store.quota import Quota
from relay.store.registry import RegisterOutcome, Registry
from support.payloads import new_id
from tests.store import registration


def registry_of(redis: Redis, max_tasks: int = 3) -> Registry:
    return Registry(redis, task_deadline=600, retention=3600, max_tasks=max_tasks)


async def run_sweep(redis: Redis) -> int:
    return await sweep(redis, now=time.time(), task_deadline=600, retention=3600)


async def test_places_follow_registrations_and_deletions(redis: Redis) -> None:
    registry = registry_of(redis)
    ids = [new_id() for _ in range(3)]
    for task_id in ids:
        assert (await registry.register(registration(task_id, "alpha"))).outcome is (
            RegisterOutcome.CREATED
        )
    assert await registry.quota.held("alpha") == 3
    # The same registration again holds no second place, even with the quota full.
    again = await registry.register(registration(ids[0], "alpha"))
    assert again.outcome is RegisterOutcome.EXISTS
    refused = await registry.register(registration(new_id(), "alpha"))
    assert refused.outcome is RegisterOutcome.QUOTA
    assert await registry.quota.held("alpha") == 3
    # Another tenant's quota is its own; joining a task takes a place of the joiner's.
    assert (await registry.register(registration(ids[0], "beta"))).outcome is (
        RegisterOutcome.CREATED
    )
    assert await registry.quota.held("beta") == 1
    for task_id in ids:
        assert await registry.unregister("alpha", task_id)
    assert await registry.quota.held("alpha") == 0
    assert not await redis.exists(keys.active_tasks("alpha")), "an empty quota leaves no key"
    assert await registry.quota.held("beta") == 1


async def test_the_sweep_gives_back_a_place_held_for_nothing_only_once_it_lasts(
    redis: Redis,
) -> None:
    registry = registry_of(redis, max_tasks=10)
    tracked = new_id()
    await registry.register(registration(tracked, "alpha"))
    # A process died between RESERVE and REGISTER: a place no task holds. The same
    # looks like a registration still on its way, so one sweep leaves it alone.
    assert await registry.quota.reserve("alpha")
    assert await registry.quota.held("alpha") == 2
    assert await run_sweep(redis) == 0
    assert await registry.quota.held("alpha") == 2
    assert await run_sweep(redis) == 1
    assert await registry.quota.held("alpha") == 1
    assert await run_sweep(redis) == 0
    assert await registry.quota.held("alpha") == 1


async def test_the_sweep_restores_places_lost_at_once(redis: Redis) -> None:
    registry = registry_of(redis, max_tasks=2)
    for _ in range(2):
        await registry.register(registration(new_id(), "alpha"))
    # A place given back twice: the quota would let the tenant past it.
    await Quota(redis).release(["alpha"])
    assert await registry.quota.held("alpha") == 1
    await run_sweep(redis)
    assert await registry.quota.held("alpha") == 2
    assert (await registry.register(registration(new_id(), "alpha"))).outcome is (
        RegisterOutcome.QUOTA
    )


async def test_release_counts_a_tenant_named_twice_twice(redis: Redis) -> None:
    quota = Quota(redis, max_tasks=5)
    for _ in range(3):
        assert await quota.reserve("alpha")
    await quota.release(["alpha", "alpha"])
    assert await quota.held("alpha") == 1
    await quota.release(["alpha", "alpha"])  # more than held: none left, not fewer
    assert await quota.held("alpha") == 0
    assert await quota.reserve("alpha")
    assert await quota.held("alpha") == 1
