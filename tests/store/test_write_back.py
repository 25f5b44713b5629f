"""A poll's write-back: a state the step left as it was is written back as stored."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from relay.core.lifecycle import Step
from relay.store import PollQueue
from relay.store.codec import dump_state
from relay.store.polls import Outcome
from relay.store.registry import Registry
from support.payloads import new_id
from tests.store import edit_record, make_due, record, registration


async def test_an_unchanged_state_is_written_back_as_it_was_stored(redis: Redis) -> None:
    registry = Registry(redis, task_deadline=3600.0, retention=60.0, max_tasks=10)
    queue = PollQueue(redis, rate=1e9, retention=60.0)
    task_id, now = new_id(), time.time()
    await registry.register(registration(task_id, "alpha", registered_at=now))
    canonical = (await record(redis, task_id)).raw_state
    assert canonical is not None
    spaced = canonical.replace(",", ", ")  # the same state, spelled otherwise
    await edit_record(redis, task_id, s=spaced)
    for before, expected in ((True, spaced), (False, canonical)):
        await make_due(redis, task_id)
        [claimed], _ = await queue.claim(10, 5.0, now + 1)
        assert claimed.raw_state == spaced
        step = Step(claimed.state, None, 30.0)
        outcome = Outcome(
            task_id,
            claimed.raw_state,
            step,
            claimed.polls + 1,
            claimed.lease,
            place=claimed.place,
            before=claimed.state if before else None,
        )
        assert (await queue.apply([outcome], now + 1)).replies == ["ok"]
        assert (await record(redis, task_id)).raw_state == expected
        assert dump_state(claimed.state) == canonical
        await edit_record(redis, task_id, s=spaced)
