"""The upstream rate shared fairly between tenants when more polls are due than it allows."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from relay.core.lifecycle import Step
from relay.store import ClaimedPoll, PollQueue, keys
from relay.store.polls import Outcome
from relay.store.registry import Registry
from support.payloads import new_id
from tests.store import make_due, record, registration


async def register(registry: Registry, tenant: str, count: int, at: float) -> list[str]:
    """`count` new tasks of `tenant`, registered a millisecond apart from `at` on."""
    ids = []
    for i in range(count):
        task_id = new_id()
        await registry.register(
            registration(task_id, tenant, registered_at=round(at + i / 1000, 3))
        )
        ids.append(task_id)
    return ids


async def claim(queue: PollQueue, limit: int) -> list[str]:
    claimed, _ = await queue.claim(limit, 30.0, time.time())
    return [c.task_id for c in claimed]


async def test_a_small_tenant_gets_its_share_beside_a_big_backlog(redis: Redis) -> None:
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=1e6, retention=3600)
    start = time.time() - 10
    big = await register(registry, "alpha", 300, start)
    small = await register(registry, "beta", 5, start + 1)  # due later than all of alpha's

    first = await claim(queue, 20)
    assert len(first) == 20
    assert set(small) <= set(first), "every one of beta's due tasks goes in the first claim"
    # Alpha's share goes to its earliest due, in order.
    assert [t for t in first if t in big] == big[:15]

    # Claimed tasks are leased: the next claims never hand them out again.
    second = await claim(queue, 20)
    assert second == big[15:35]
    everything = first + second
    while batch := await claim(queue, 50):
        everything += batch
    assert sorted(everything) == sorted(big + small), "each due task claimed exactly once"


async def test_shared_tasks_count_once_and_equal_shares_between_big_tenants(
    redis: Redis,
) -> None:
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=1e6, retention=3600)
    start = time.time() - 10
    alpha = await register(registry, "alpha", 100, start)
    beta = await register(registry, "beta", 100, start + 1)
    # Gamma joins ten of alpha's tasks: they are polled once for both.
    for task_id in alpha[:10]:
        await registry.register(registration(task_id, "gamma", registered_at=start + 2))
    first = await claim(queue, 30)
    assert len(first) == len(set(first)) == 30
    assert sum(t in beta for t in first) >= 10
    assert sum(t in alpha for t in first) >= 10


async def test_without_contention_every_due_task_goes_earliest_first(redis: Redis) -> None:
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=1e6, retention=3600)
    start = time.time() - 10
    alpha = await register(registry, "alpha", 5, start)
    beta = await register(registry, "beta", 5, start + 1)
    assert await claim(queue, 100) == alpha + beta


async def write_back(queue: PollQueue, claimed: list[ClaimedPoll], delay: float) -> None:
    """Each claimed poll written back unchanged, due again `delay` seconds on."""
    outcomes = [
        Outcome(c.task_id, c.raw_state, Step(c.state, None, delay), c.polls + 1, c.lease)
        for c in claimed
    ]
    assert (await queue.apply(outcomes, time.time())).replies == ["ok"] * len(claimed)


async def test_a_tenant_polled_alone_gets_its_share_once_a_second_one_comes(
    redis: Redis,
) -> None:
    registry = Registry(redis, task_deadline=7200, retention=3600)
    queue = PollQueue(redis, rate=1e6, retention=3600)
    alpha = await register(registry, "alpha", 50, time.time() - 10)
    claimed, _ = await queue.claim(100, 30.0, time.time())
    assert len(claimed) == 50
    fair_due = {t: (await record(redis, t)).fields["fd"] for t in alpha}
    await write_back(queue, claimed, 3600.0)
    # Alone in their shards, their fair queue members stay where they were.
    assert {t: (await record(redis, t)).fields["fd"] for t in alpha} == fair_due
    for task_id in alpha[:10]:
        await make_due(redis, task_id)
    beta = await register(registry, "beta", 10, time.time() - 5)
    first = await claim(queue, 10)
    assert len(first) == 10
    assert sum(t in alpha[:10] for t in first) == 5 and sum(t in beta for t in first) == 5
    # Where the shard is shared now, a poll moves its task's members with it again.
    polled = [c for c in (await queue.claim(100, 30.0, time.time()))[0] if c.task_id in alpha]
    assert polled
    await write_back(queue, polled, 600.0)
    shared = {keys.shard_of(t) for t in beta}
    for c in polled:
        moved = (await record(redis, c.task_id)).fields["fd"] != fair_due[c.task_id]
        assert moved == (keys.shard_of(c.task_id) in shared)
