"""RELAY_RETENTION accepts fractions of a second, like every duration: kept to the ms."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from relay.core import lifecycle
from relay.core.model import Observation, TaskState
from relay.core.schedule import PollPolicy
from relay.store import PollQueue, keys
from relay.store.polls import Outcome
from relay.store.registry import Registry
from support.payloads import new_id
from tests.store import record, registration

FINISHED = Observation(upstream_status="finished", status="succeeded", progress=100)


async def test_a_final_task_expires_after_a_retention_under_a_second(redis: Redis) -> None:
    registry = Registry(redis, task_deadline=600, retention=0.5)
    queue = PollQueue(redis, rate=1000, retention=0.5)
    task_id = new_id()
    now = time.time()
    await registry.register(registration(task_id, "alpha", registered_at=now))
    raw = (await record(redis, task_id)).raw_state
    assert raw is not None
    step = lifecycle.observe(TaskState(now, now + 600), FINISHED, now, PollPolicy())
    applied = await queue.apply([Outcome(task_id, raw, step, polls_after=1)], now)
    assert applied.replies == ["ok"]
    ttl = await redis.pttl(keys.task(task_id))
    assert 0 < ttl <= 500, ttl


async def test_a_deleted_task_keeps_its_state_for_a_retention_under_a_second(
    redis: Redis,
) -> None:
    registry = Registry(redis, task_deadline=600, retention=0.25)
    task_id = new_id()
    await registry.register(registration(task_id, "alpha"))
    assert await registry.unregister("alpha", task_id)
    ttl = await redis.pttl(keys.task(task_id))
    assert 0 < ttl <= 250, ttl
