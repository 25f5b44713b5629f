"""RELAY_TENANT_MAX_TASKS: tracked tasks per tenant, 429 `quota_exceeded` beyond it."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from support.payloads import finished, new_id, processing
from support.servers import ScriptedUpstream
from tests.conftest import Api

QUOTA = {"RELAY_TENANT_MAX_TASKS": "3"}
BETA = "key-beta-0123456789"


async def keys_of(redis: Redis) -> set[str]:
    return {k async for k in redis.scan_iter("relay:*")}


@pytest.mark.parametrize("env_overrides", [QUOTA])
async def test_past_the_quota_a_registration_is_429_and_nothing_is_stored(
    api: Api, redis: Redis
) -> None:
    held = [new_id() for _ in range(3)]
    for task_id in held:
        assert (await api.register(task_id)).status_code == 201
    before = await keys_of(redis)
    extra = new_id()
    refused = await api.register(extra, webhook_url="https://example.com/hook")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert await keys_of(redis) == before, "nothing stored for the refused registration"
    assert (await api.task(extra)).status_code == 404
    # The identical registration of a task it holds is still answered 200.
    assert (await api.register(held[0])).status_code == 200
    # Another tenant has its own quota.
    assert (await api.register(extra, key=BETA)).status_code == 201
    # A deleted task frees its place.
    assert (await api.client.delete(f"/v1/tasks/{held[0]}")).status_code == 204
    assert (await api.register(extra)).status_code == 201
    assert (await api.register(new_id())).status_code == 429


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(
    "env_overrides",
    [{**QUOTA, "RELAY_POLL_MIN_INTERVAL": "0.05", "RELAY_POLL_MAX_INTERVAL": "0.2"}],
)
async def test_a_final_task_frees_its_place_and_joining_one_costs_none(
    api: Api, upstream: ScriptedUpstream
) -> None:
    ids = [new_id() for _ in range(3)]
    for task_id in ids:
        upstream.script(task_id, finished(task_id))
        assert (await api.register(task_id)).status_code == 201
    for task_id in ids:
        await api.wait_status(task_id, "succeeded")
    # Every place is free again: three new tasks fit.
    fresh = [new_id() for _ in range(3)]
    for task_id in fresh:
        upstream.script(task_id, processing(task_id))
        assert (await api.register(task_id)).status_code == 201
    assert (await api.register(new_id())).status_code == 429
    # A task already final is not tracked: the other tenant joins it at any quota.
    for task_id in ids:
        assert (await api.register(task_id, key=BETA)).status_code == 201
    for task_id in fresh:
        assert (await api.register(task_id, key=BETA)).status_code == 201
    assert (await api.register(new_id(), key=BETA)).status_code == 429
