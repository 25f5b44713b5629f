"""`GET /v1/tasks/{id}/wait` without polling Redis per waiter (relay.api.waiters).

Real Redis, the real app on uvicorn, a real worker where a task must end. A
waiter reads the task when it starts, then only when the API's one subscription
to `relay:finals` wakes it, and at its timeout; its answer comes before its
timeout when the task ends; the per-process cap answers 429; the subscription
comes back by itself after a Redis restart and no waiter misses an end meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from relay.api.waiters import Waiters
from relay.devtools.redis_server import RedisServer
from relay.settings import load_settings
from relay.store import keys
from support.payloads import finished, new_id, processing
from support.servers import ScriptedUpstream
from support.waiting import eventually
from tests.conftest import Api, fast_env, running_worker
from tests.reliability import test_redis_restart as restarts

LONG = 30  # a wait's timeout: an answer well before it came from a wake-up


def waiters_of(api: Api) -> Waiters:
    app: Any = api.server.config.app
    found: Waiters = app.state.relay.waiters
    return found


class Reads:
    """Counts the API's reads of a task from Redis (`Registry.get`, what a wait reads)."""

    def __init__(self, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
        app: Any = api.server.config.app
        registry = app.state.relay.registry
        self.count = 0
        original = registry.get

        async def get(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(registry, "get", get)


async def open_waits(api: Api, task_id: str, count: int) -> list[asyncio.Task[httpx.Response]]:
    """`count` concurrent waits (httpx's pool holds 100 connections), once all are open."""
    waits = [
        asyncio.create_task(api.client.get(f"/v1/tasks/{task_id}/wait", params={"timeout": LONG}))
        for _ in range(count)
    ]
    await waiting(api, waiters_of(api).open + count)
    return waits


async def waiting(api: Api, count: int) -> None:
    async def opened() -> bool:
        return waiters_of(api).open == count

    await eventually(opened, 10, f"{count} waits open", 0.02)


async def answered(waits: list[asyncio.Task[httpx.Response]]) -> list[httpx.Response]:
    """The waits' answers, which must come well before their timeout."""
    return await asyncio.wait_for(asyncio.gather(*waits), LONG - 10)


async def running_task(api: Api, upstream: ScriptedUpstream) -> str:
    """A task registered without webhooks that the worker has seen running."""
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    assert (await api.register(task_id, events=[])).status_code == 201
    await api.wait_status(task_id, "running")
    return task_id


async def test_waiters_read_the_task_once_then_only_when_woken(
    api: Api, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Reads(api, monkeypatch)
    task_id = new_id()
    assert (await api.register(task_id, events=[])).status_code == 201
    await eventually(lambda: _true(waiters_of(api).live), 10, "subscribed")
    waits = await open_waits(api, task_id, 20)
    before = reads.count
    await asyncio.sleep(1.0)  # the old route read 4 times a second per waiter: 80 reads
    assert reads.count == before, "waiters read Redis without being woken"

    # A wake-up for the task: each waiter reads once, sees it still queued, waits on.
    await redis.publish(keys.FINALS, keys.compact_id(task_id))  # as APPLY publishes it

    async def each_read_once() -> bool:
        return reads.count - before >= 20

    await eventually(each_read_once, 10, "every waiter read the task again")
    await asyncio.sleep(0.3)
    assert reads.count - before == 20
    assert not any(w.done() for w in waits)

    # Deleted meanwhile: the delete wakes them, each answers 404.
    assert (await api.client.delete(f"/v1/tasks/{task_id}")).status_code == 204
    for response in await answered(waits):
        assert response.status_code == 404, response.text
    assert waiters_of(api).open == 0


@pytest.mark.usefixtures("worker")
async def test_many_waiters_on_one_task_are_all_answered_when_it_ends_one_times_out(
    api: Api, upstream: ScriptedUpstream
) -> None:
    task_id = await running_task(api, upstream)
    waits = await open_waits(api, task_id, 60)
    # One that times out meanwhile answers the task as it is.
    response = await api.client.get(f"/v1/tasks/{task_id}/wait", params={"timeout": 1})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "running"
    assert response.json()["task_id"] == task_id
    assert not any(w.done() for w in waits)

    upstream.script(task_id, finished(task_id))
    responses = await answered(waits)
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["status"] for r in responses} == {"succeeded"}
    assert waiters_of(api).open == 0


@pytest.mark.usefixtures("worker")
async def test_past_the_cap_a_wait_is_429_too_many_waits(
    api: Api, upstream: ScriptedUpstream
) -> None:
    waiters_of(api).cap = 3
    running, other, done = new_id(), new_id(), new_id()
    upstream.script(running, processing(running))
    upstream.script(other, processing(other))
    upstream.script(done, finished(done))
    for task_id in (running, other, done):
        assert (await api.register(task_id, events=[])).status_code == 201
    await api.wait_status(done, "succeeded")
    waits = await open_waits(api, running, 3)

    refused = await api.client.get(f"/v1/tasks/{other}/wait", params={"timeout": 5})
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "too_many_waits"
    # What needs no waiting is still answered: a final task, a timeout of 0.
    final = await api.client.get(f"/v1/tasks/{done}/wait", params={"timeout": 5})
    assert final.status_code == 200 and final.json()["status"] == "succeeded"
    now = await api.client.get(f"/v1/tasks/{other}/wait", params={"timeout": 0})
    assert now.status_code == 200 and now.json()["status"] == "running"

    upstream.script(running, finished(running))
    assert {r.json()["status"] for r in await answered(waits)} == {"succeeded"}
    # The slots are free again.
    upstream.script(other, finished(other))
    again = await api.client.get(f"/v1/tasks/{other}/wait", params={"timeout": LONG})
    assert again.status_code == 200 and again.json()["status"] == "succeeded"


async def test_a_client_that_goes_away_frees_its_wait(api: Api) -> None:
    task_id = new_id()
    assert (await api.register(task_id, events=[])).status_code == 201
    (wait,) = await open_waits(api, task_id, 1)
    wait.cancel()  # httpx closes the connection under the request
    await waiting(api, 0)


own_redis = restarts.own_redis  # a private appendonly Redis, restarted on its data


async def test_the_subscription_survives_a_redis_restart(
    own_redis: list[RedisServer], upstream: ScriptedUpstream
) -> None:
    settings = load_settings(fast_env(own_redis[0].url, upstream.url))
    async with Api(settings) as api, running_worker(settings):
        waiters = waiters_of(api)
        await eventually(lambda: _true(waiters.live), 10, "subscribed")
        across = await running_task(api, upstream)
        after = await running_task(api, upstream)
        unheard = await running_task(api, upstream)
        spanning = await open_waits(api, across, 1)
        await asyncio.sleep(1.5)  # appendfsync everysec: the registrations are on disk

        own_redis[0].kill()
        await eventually(lambda: _true(not waiters.live), 10, "the subscription is seen down")
        own_redis[0] = restarts.restart(own_redis[0])
        await eventually(lambda: _true(waiters.live), 15, "subscribed again by itself")

        # A wait open through the outage is answered when its task ends.
        upstream.script(across, finished(across))
        (response,) = await answered(spanning)
        assert response.status_code == 200 and response.json()["status"] == "succeeded"

        # One opened after the restart is woken as well.
        woken = await open_waits(api, after, 1)
        upstream.script(after, finished(after))
        (response,) = await answered(woken)
        assert response.json()["status"] == "succeeded"

        # The subscription alone is cut while the task ends: its publish may be lost,
        # and the waiter still reads the end before its timeout.
        cut = await open_waits(api, unheard, 1)
        control = Redis.from_url(own_redis[0].url, decode_responses=True)
        try:
            await control.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            upstream.script(unheard, finished(unheard))
            (response,) = await answered(cut)
            assert response.json()["status"] == "succeeded"
        finally:
            await control.aclose()


async def _true(value: bool) -> bool:
    return value
