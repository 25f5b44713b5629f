"""Claims with little or nothing due: the shards are counted first, and only those with
something due run a claim script (an idle worker claims every few tens of ms)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis

from relay.store import PollQueue, keys, polls
from relay.store.deliveries import DeliveryQueue
from relay.store.registry import Registry
from relay.store.shards import due_shards
from support.payloads import new_id
from tests.store import registration


async def scripts_run(redis: Redis) -> int:
    """Script calls that ran (not those refused as NOSCRIPT, which loads them)."""
    stats = (await redis.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))


async def test_an_idle_delivery_claim_runs_no_script(redis: Redis) -> None:
    queue = DeliveryQueue(redis, retention=60.0)
    await redis.config_resetstat()
    assert await queue.claim(100, 5.0, time.time()) == []
    assert await scripts_run(redis) == 0


async def test_a_delivery_claim_runs_the_script_of_the_one_shard_with_one_due(
    redis: Redis,
) -> None:
    queue = DeliveryQueue(redis, retention=60.0)
    delivery = keys.delivery_id(new_id(), "k1")
    due = keys.delivery_due(keys.delivery_shard(delivery))
    await redis.zadd(due, {delivery: 0})  # its task has no record: the claim drops it
    await redis.config_resetstat()
    assert await queue.claim(100, 5.0, time.time()) == []
    assert await scripts_run(redis) == 1
    assert await redis.zcard(due) == 0


async def test_a_poll_claim_runs_the_scripts_of_the_shards_with_a_task_due(redis: Redis) -> None:
    registry = Registry(redis, task_deadline=3600.0, retention=60.0, max_tasks=100)
    queue = PollQueue(redis, rate=1e9, retention=60.0)
    now = time.time()
    ids = [new_id() for _ in range(3)]
    for task_id in ids:
        await registry.register(registration(task_id, "alpha", registered_at=now))
    await redis.config_resetstat()
    assert await queue.claim(100, 5.0, now - 60) == ([], False)  # none due yet
    assert await scripts_run(redis) == 0
    claimed, _ = await queue.claim(100, 5.0, now + 1)
    assert sorted(c.task_id for c in claimed) == sorted(ids)
    assert [c.place for c in claimed] == [keys.place_of(c.task_id) for c in claimed]
    shards = {keys.shard_of(task_id) for task_id in ids}
    # The shared rate's take and refund; a claim this small peeks at each shard with a
    # task due, then takes what it chose of each: two calls each, none on the others.
    assert await scripts_run(redis) == 2 + 2 * len(shards)


async def test_a_claim_right_after_a_full_one_does_not_count_the_shards_again(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[int] = []

    async def counting(*args: Any) -> list[int]:
        found = await due_shards(*args)
        counted.append(len(found))
        return found

    monkeypatch.setattr(polls, "due_shards", counting)
    registry = Registry(redis, task_deadline=3600.0, retention=60.0, max_tasks=1000)
    queue = PollQueue(redis, rate=1e9, retention=60.0)
    now = time.time()
    ids = {new_id() for _ in range(300)}
    for task_id in ids:
        await registry.register(registration(task_id, "alpha", registered_at=now))
    first, _ = await queue.claim(200, 5.0, now + 1)
    assert len(first) == 200 and len(counted) == 1
    # It took all it could and left more due: the next claim goes to those shards at once
    # and gets the rest, which leaves none due: the one after counts again.
    second, _ = await queue.claim(200, 5.0, now + 1)
    assert {c.task_id for c in first + second} == ids
    assert len(counted) == 1
    assert await queue.claim(200, 5.0, now + 1) == ([], False)
    assert counted == [counted[0], 0]
