"""One bad item in a batched write never takes the others with it."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from relay.core import lifecycle
from relay.core.model import Observation, TaskState
from relay.core.schedule import PollPolicy
from relay.store import PollQueue
from relay.store.polls import Outcome
from relay.store.registry import Registry
from support.payloads import finished, new_id, processing
from support.servers import Receiver, ScriptedUpstream
from tests.conftest import Api
from tests.store import edit_record, record, registration

FINISHED = Observation(upstream_status="finished", status="succeeded", progress=100)


async def test_a_failing_outcome_leaves_the_others_of_its_batch_written(redis: Redis) -> None:
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=1000, retention=3600)
    good, bad = new_id(), new_id()
    for task_id in (good, bad):
        await registry.register(registration(task_id, "alpha", webhook_url="https://example.com/h"))
    # The bad task's poll count is not a number: writing its outcome fails.
    await edit_record(redis, bad, p="not a number")
    now = time.time()
    outcomes = []
    for task_id in (bad, good):
        raw = (await record(redis, task_id)).raw_state
        assert raw is not None
        state = TaskState(registered_at=now, deadline_at=now + 600)
        step = lifecycle.observe(state, FINISHED, now, PollPolicy())
        outcomes.append(Outcome(task_id, raw, step, polls_after=1, lease=None))
    applied = await queue.apply(outcomes, now)
    assert applied.replies == ["error", "ok"]
    done = await record(redis, good)
    assert done.fields["ft"] == "task.succeeded"
    assert len(done.delivery_ids("alpha")) == 1


@pytest.mark.usefixtures("worker")
async def test_an_unreadable_registration_does_not_stop_the_others_events(
    api: Api, redis: Redis, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id, "10"))
    assert (await api.register(task_id, webhook_url=receiver.url + "/a")).status_code == 201
    beta = await api.register(task_id, key="key-beta-0123456789", webhook_url=receiver.url + "/b")
    assert beta.status_code == 201
    await api.wait_status(task_id, "running")
    # Whatever made it so, the other tenant's stored registration cannot be read by Lua.
    await edit_record(redis, task_id, **{"r:beta": "{" * 1200 + "}" * 1200})
    upstream.script(task_id, finished(task_id))
    await receiver.wait_for(1, timeout=10)
    await asyncio.sleep(0.3)
    (event,) = receiver.events()
    assert event["type"] == "task.succeeded"
    assert event["data"]["webhook_url"] == receiver.url + "/a"
    assert (await api.task(task_id)).json()["status"] == "succeeded"
    # Counted: processes add their counters to Redis about once a second.
    for _ in range(100):
        metrics = (await api.client.get("/metrics")).text
        if 'relay_write_errors_total{item="registration"} 1.0' in metrics:
            break
        await asyncio.sleep(0.05)
    assert 'relay_write_errors_total{item="registration"} 1.0' in metrics
