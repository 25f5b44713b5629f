"""Deliveries that spent their retry schedule: `GET /v1/deliveries?status=failed` lists them
across the tenant's tasks, `POST /v1/deliveries/redeliver` starts each again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from support.payloads import finished, new_id
from support.servers import Receiver, ScriptedUpstream
from support.waiting import eventually
from tests.conftest import Api

pytestmark = pytest.mark.usefixtures("worker")

ATTEMPTS = 4  # fast_env's schedule 0.05,0.05,0.05: the first attempt and three retries
DELIVERY_KEYS = {"id", "task_id", "webhook_id", "type", "status", "attempts"}


@pytest.fixture
def env_overrides() -> dict[str, str]:
    # These receivers fail every attempt of whole schedules on purpose: no breaker holds them.
    return {"RELAY_RECEIVER_HOLD_AFTER": "0"}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
async def beta_receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


async def failed_page(
    api: Api, key: str = "key-alpha-0123456789", **query: Any
) -> tuple[list[dict[str, Any]], str | None]:
    response = await api.client.get("/v1/deliveries", params=query, headers=bearer(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"deliveries", "next_cursor"}
    return body["deliveries"], body["next_cursor"]


async def all_failed(
    api: Api, key: str = "key-alpha-0123456789", limit: int = 50
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(200):
        query: dict[str, Any] = {"status": "failed", "limit": limit}
        if cursor:
            query["cursor"] = cursor
        page, cursor = await failed_page(api, key, **query)
        assert len(page) <= limit
        found.extend(page)
        if cursor is None:
            return found
    raise AssertionError("the cursor never ran out")


async def wait_failed(
    api: Api, count: int, key: str = "key-alpha-0123456789"
) -> list[dict[str, Any]]:
    for _ in range(200):
        found = await all_failed(api, key)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key}: {len(found)} failed deliveries, expected {count}: {found}")


async def register_failing(
    api: Api, upstream: ScriptedUpstream, url: str, count: int, key: str = "key-alpha-0123456789"
) -> list[str]:
    ids = [new_id() for _ in range(count)]
    for task_id in ids:
        upstream.script(task_id, finished(task_id))
        response = await api.register(task_id, key=key, webhook_url=url, metadata={"k": key})
        assert response.status_code == 201, response.text
    return ids


def assert_error(response: httpx.Response, status: int, field: str | None) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.json()["error"].get("field") == field, response.json()


async def test_failed_deliveries_are_listed_paged_and_started_again(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, beta_receiver: Receiver
) -> None:
    receiver.answers = [500] * 1000  # always 500, until the test says otherwise
    beta_receiver.answers = [500] * 1000
    alpha = await register_failing(api, upstream, receiver.url + "/alpha", 5)
    beta = await register_failing(
        api, upstream, beta_receiver.url + "/beta", 2, key="key-beta-0123456789"
    )

    failed = await wait_failed(api, len(alpha))
    await receiver.wait_for(len(alpha) * ATTEMPTS)
    await asyncio.sleep(0.2)
    assert len(receiver.received) == len(alpha) * ATTEMPTS, "no attempt after the schedule"
    assert len(failed) == len(alpha)
    assert sorted(d["task_id"] for d in failed) == sorted(alpha)
    first_ids = {d["task_id"]: d["webhook_id"] for d in failed}
    for delivery in failed:
        assert set(delivery) >= DELIVERY_KEYS, delivery
        assert delivery["status"] == "failed"
        assert delivery["type"] == "task.succeeded"
        assert len(delivery["attempts"]) == ATTEMPTS
        assert [a["status_code"] for a in delivery["attempts"]] == [500] * ATTEMPTS
        assert all(a["error"] is None and a["duration_ms"] >= 0 for a in delivery["attempts"])
        # The same delivery as the task's own deliveries listing shows.
        listing = (await api.client.get(f"/v1/tasks/{delivery['task_id']}/deliveries")).json()
        (own,) = listing["deliveries"]
        assert own["id"] == delivery["id"] and own["webhook_id"] == delivery["webhook_id"]
        assert own["status"] == "failed"
    # Every attempt of one delivery carried its webhook-id.
    sent = {r.headers["webhook-id"] for r in receiver.received}
    assert sent == set(first_ids.values())

    # Pages of two: every failed delivery once.
    paged: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        query: dict[str, Any] = {"limit": 2}
        if cursor:
            query["cursor"] = cursor
        page, cursor = await failed_page(api, **query)
        paged.extend(page)
        sizes.append(len(page))
        if cursor is None:
            break
    assert cursor is None
    assert sorted(d["id"] for d in paged) == sorted(d["id"] for d in failed)
    assert sizes[:3] == [2, 2, 1]

    # The other tenant sees only its own.
    beta_failed = await wait_failed(api, len(beta), key="key-beta-0123456789")
    assert sorted(d["task_id"] for d in beta_failed) == sorted(beta)
    assert not {d["id"] for d in beta_failed} & {d["id"] for d in failed}
    assert sorted(d["task_id"] for d in await all_failed(api, "key-alpha-0123456789-2")) == sorted(
        alpha
    )

    # The receiver is fixed: start every failed delivery of alpha again.
    receiver.answers = []
    before = len(receiver.received)
    response = await api.client.post("/v1/deliveries/redeliver")
    assert response.status_code == 202, response.text
    assert sorted(response.json()["delivery_ids"]) == sorted(d["id"] for d in failed)
    await receiver.wait_for(before + len(alpha))
    again = receiver.received[before:]
    assert {r.headers["webhook-id"] for r in again} == set(first_ids.values())
    assert sorted(r.json["data"]["task_id"] for r in again) == sorted(alpha)
    for received in again:
        assert first_ids[received.json["data"]["task_id"]] == received.headers["webhook-id"]

    for _ in range(100):
        if not await all_failed(api):
            break
        await asyncio.sleep(0.05)
    assert await all_failed(api) == [], "redelivered deliveries leave the failed list"
    for task_id in alpha:
        # The receiver has the webhook a moment before the worker writes the attempt down.
        async def delivered(task_id: str = task_id) -> bool:
            listing = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()
            return bool(listing["deliveries"][0]["status"] == "delivered")

        await eventually(delivered, 10, f"task {task_id}'s redelivery recorded as delivered")
        (own,) = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()["deliveries"]
        assert [a["status_code"] for a in own["attempts"]][-1] == 204

    # Beta's failures are untouched by alpha's redeliver; nothing reached beta's receiver.
    assert sorted(d["id"] for d in await all_failed(api, "key-beta-0123456789")) == sorted(
        d["id"] for d in beta_failed
    )
    await asyncio.sleep(0.2)
    assert len(beta_receiver.received) == len(beta) * ATTEMPTS
    # A second bulk redeliver has nothing left to start.
    response = await api.client.post("/v1/deliveries/redeliver")
    assert response.status_code == 202 and response.json() == {"delivery_ids": []}
    await asyncio.sleep(0.2)
    assert len(receiver.received) == before + len(alpha)


async def test_other_tenants_see_nothing_and_start_nothing(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    receiver.answers = [500] * 1000
    alpha = await register_failing(api, upstream, receiver.url, 2)
    await wait_failed(api, len(alpha))
    await asyncio.sleep(0.1)
    arrived = len(receiver.received)

    assert await all_failed(api, "key-beta-0123456789") == []
    response = await api.client.post(
        "/v1/deliveries/redeliver", headers=bearer("key-beta-0123456789")
    )
    assert response.status_code == 202 and response.json() == {"delivery_ids": []}
    for task_id in alpha:
        response = await api.client.post(
            f"/v1/tasks/{task_id}/redeliver", headers=bearer("key-beta-0123456789")
        )
        assert_error(response, 404, None)
        response = await api.client.get(
            f"/v1/tasks/{task_id}/deliveries", headers=bearer("key-beta-0123456789")
        )
        assert_error(response, 404, None)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == arrived
    assert len(await all_failed(api)) == len(alpha)


async def test_a_deleted_task_takes_its_failed_delivery_with_it(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    receiver.answers = [500] * 1000
    kept, dropped = await register_failing(api, upstream, receiver.url, 2)
    await wait_failed(api, 2)
    assert (await api.client.delete(f"/v1/tasks/{dropped}")).status_code == 204
    remaining = await all_failed(api)
    assert [d["task_id"] for d in remaining] == [kept]
    receiver.answers = []
    response = await api.client.post("/v1/deliveries/redeliver")
    assert response.status_code == 202
    assert response.json()["delivery_ids"] == [remaining[0]["id"]]


async def test_the_list_and_redeliver_need_a_key(api: Api) -> None:
    for method, path in [("GET", "/v1/deliveries"), ("POST", "/v1/deliveries/redeliver")]:
        response = await api.client.request(method, path, headers={"authorization": ""})
        assert_error(response, 401, None)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "pending"}, "status"),
        ({"status": "delivered"}, "status"),
        ({"status": ""}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "!!not-a-cursor!!"}, "cursor"),
    ],
)
async def test_bad_queries_are_400_naming_the_field(
    api: Api, query: dict[str, str], field: str
) -> None:
    response = await api.client.get("/v1/deliveries", params=query)
    assert_error(response, 400, field)


async def test_an_empty_failed_list(api: Api) -> None:
    assert await failed_page(api) == ([], None)
    assert await failed_page(api, status="failed") == ([], None)
