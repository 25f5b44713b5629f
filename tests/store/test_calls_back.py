"""Which tasks the store marks as called back (`upstream_webhook: true` for every tenant)."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from relay.store import PollQueue
from relay.store.registry import Registry
from support.payloads import new_id
from tests.store import edit_record, make_due, registration


async def claim_one(queue: PollQueue, task_id: str) -> bool:
    """Claim the task (made due now) and tell whether it is called back."""
    await make_due(queue.redis, task_id)
    claimed, _ = await queue.claim(100, 5.0, time.time())
    (only,) = [c for c in claimed if c.task_id == task_id]
    return only.calls_back


async def test_a_task_is_called_back_only_while_every_registration_says_so(
    redis: Redis,
) -> None:
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=1000, retention=3600)
    task_id = new_id()

    await registry.register(registration(task_id, "alpha", upstream_webhook=True))
    assert await claim_one(queue, task_id) is True
    # A second tenant that polls as usual: the task is polled as usual for both.
    await registry.register(registration(task_id, "beta"))
    assert await claim_one(queue, task_id) is False
    # The same registration again changes no count.
    await registry.register(registration(task_id, "beta"))
    await registry.unregister("beta", task_id)
    assert await claim_one(queue, task_id) is True
    await registry.register(registration(task_id, "gamma"))
    await registry.unregister("alpha", task_id)
    assert await claim_one(queue, task_id) is False


async def test_a_registration_without_its_mark_is_polled_as_usual(redis: Redis) -> None:
    """The mark alone says a registration is called back: a record that lost it is
    polled as usual, never left to a callback that may not come."""
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=1000, retention=3600)
    task_id = new_id()
    await registry.register(registration(task_id, "alpha", upstream_webhook=True))
    assert await claim_one(queue, task_id) is True
    await edit_record(redis, task_id, **{"u:alpha": None})
    assert await claim_one(queue, task_id) is False
