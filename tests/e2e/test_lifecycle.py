"""The whole path, end to end: register, poll a real upstream server, deliver signed webhooks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from support.payloads import GRID, answer, finished, new_id
from support.servers import Canned, Receiver, ScriptedUpstream
from tests.conftest import WEBHOOK_SECRET, Api

pytestmark = pytest.mark.usefixtures("worker")


def verified(receiver: Receiver) -> list[dict[str, Any]]:
    """Every received webhook, checked with the official Standard Webhooks library."""
    hook = Webhook(WEBHOOK_SECRET)
    return [hook.verify(r.body, r.headers) for r in receiver.received]


async def test_grid_task_succeeds_and_one_signed_webhook_arrives(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(
        task_id,
        answer(task_id, "pending"),
        answer(task_id, "processing", percentage="45"),
        finished(task_id),
    )
    response = await api.register(
        task_id, webhook_url=receiver.url + "/hooks", metadata={"user": 7}
    )
    assert response.status_code == 201
    assert response.json()["status"] == "queued"

    await receiver.wait_for(1)
    (event,) = verified(receiver)
    assert event["type"] == "task.succeeded"
    data = event["data"]
    assert data["task_id"] == task_id
    assert data["status"] == "succeeded"
    assert data["upstream_status"] == "finished"
    assert data["progress"] == 100
    assert data["result"] == {
        "images": GRID["image_urls"],
        "grid_image": GRID["original_image_url"],
        "videos": [],
        "content": [],
        "seed": None,
    }
    assert data["metadata"] == {"user": 7}
    assert data["polls"] == 3
    assert data["completed_at"] is not None
    headers = receiver.received[0].headers
    assert headers["webhook-id"].startswith("msg_")
    assert headers["Content-Type"] == "application/json"
    # The upstream got its key as it is, no Bearer prefix.
    assert upstream.headers_seen[0]["Authorization"] == "upstream-key"

    body = (await api.task(task_id)).json()
    assert body["status"] == "succeeded" and body["polls"] == 3
    await asyncio.sleep(0.3)
    assert upstream.calls[task_id] == 3, "a final task is never polled again"
    assert len(receiver.received) == 1


async def test_progress_events_arrive_in_order_then_the_final_one(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(
        task_id,
        answer(task_id, "pending"),
        answer(task_id, "processing", percentage="10"),
        answer(task_id, "processing", percentage="10"),
        answer(task_id, "processing", percentage="60%"),
        finished(task_id),
    )
    events = ["task.progress", "task.succeeded"]
    assert (await api.register(task_id, webhook_url=receiver.url, events=events)).status_code == 201
    await receiver.wait_for(3)
    await asyncio.sleep(0.2)
    seen = [(e["type"], e["data"]["status"], e["data"]["progress"]) for e in verified(receiver)]
    assert seen == [
        ("task.progress", "running", 10),
        ("task.progress", "running", 60),
        ("task.succeeded", "succeeded", 100),
    ]
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(set(ids)) == 3


async def test_synchronous_task_is_final_after_one_poll(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(
        task_id,
        answer(task_id, "finished", model="flux-pro", image_url="https://images.example/f.png"),
    )
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(1)
    data = verified(receiver)[0]["data"]
    assert data["polls"] == 1
    assert data["result"]["images"] == ["https://images.example/f.png"]
    assert data["result"]["grid_image"] is None


async def test_receiver_failing_twice_gets_three_attempts_with_one_webhook_id(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    receiver.answers = [500, 503]
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(3)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1, "every attempt carries the same body"
    verified(receiver)
    await asyncio.sleep(0.1)
    listing = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()["deliveries"]
    assert len(listing) == 1
    assert listing[0]["status"] == "delivered"
    assert listing[0]["webhook_id"] == receiver.received[0].headers["webhook-id"]
    assert [a["status_code"] for a in listing[0]["attempts"]] == [500, 503, 204]
    assert all(a["duration_ms"] >= 0 and a["at"].endswith("Z") for a in listing[0]["attempts"])


async def test_receiver_that_never_accepts_ends_failed_after_the_schedule(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    receiver.answers = [500] * 10
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(4)  # the first attempt and the schedule's three retries
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 4
    listing = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()["deliveries"]
    assert listing[0]["status"] == "failed"
    assert len(listing[0]["attempts"]) == 4

    # redeliver: a new series, the same webhook-id
    receiver.answers = []
    response = await api.client.post(f"/v1/tasks/{task_id}/redeliver")
    assert response.status_code == 202
    await receiver.wait_for(5)
    assert receiver.received[4].headers["webhook-id"] == receiver.received[0].headers["webhook-id"]


async def test_unreachable_receiver_is_retried(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    closed_port = Receiver().port  # nothing listens there
    await api.register(task_id, webhook_url=f"http://127.0.0.1:{closed_port}/x")
    await asyncio.sleep(0.6)
    listing = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()["deliveries"]
    assert listing[0]["status"] == "failed"
    errors = [a["error"] for a in listing[0]["attempts"]]
    assert len(errors) == 4 and all(e and e.startswith("connect") for e in errors)


@pytest.mark.parametrize("env_overrides", [{"RELAY_TASK_DEADLINE": "0.4"}])
async def test_task_past_its_deadline_times_out(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, answer(task_id, "processing", percentage="5"))
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(1)
    (event,) = verified(receiver)
    assert event["type"] == "task.timed_out"
    assert event["data"]["status"] == "timed_out"
    assert "RELAY_TASK_DEADLINE" in event["data"]["error"]
    calls = upstream.calls[task_id]
    await asyncio.sleep(0.3)
    assert upstream.calls[task_id] == calls


async def test_deleted_registration_gets_no_webhook(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(
        task_id, *[answer(task_id, "processing", percentage="5")] * 3, finished(task_id)
    )
    await api.register(task_id, webhook_url=receiver.url)
    assert (await api.client.delete(f"/v1/tasks/{task_id}")).status_code == 204
    assert (await api.task(task_id)).status_code == 404
    assert (await api.client.delete(f"/v1/tasks/{task_id}")).status_code == 404
    await asyncio.sleep(0.8)
    assert receiver.received == []
    assert upstream.calls[task_id] <= 2, "nobody is subscribed: polling stops"


async def test_failed_is_believed_only_after_the_grace(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(
        task_id,
        answer(task_id, "processing", percentage="50"),
        answer(task_id, "failed", error="Content policy violation"),
    )
    await api.register(task_id, webhook_url=receiver.url)
    await asyncio.sleep(0.12)
    held = (await api.task(task_id)).json()
    if held["upstream_status"] == "failed":
        assert held["status"] == "running", "during the grace the status stays as it was"
    await receiver.wait_for(1)
    (event,) = verified(receiver)
    assert event["type"] == "task.failed"
    assert event["data"]["error"] == "Content policy violation"


async def test_failed_then_retried_by_the_upstream_succeeds(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(
        task_id,
        answer(task_id, "failed", error="boom"),
        answer(task_id, "processing", percentage="30"),
        finished(task_id),
    )
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(1)
    await asyncio.sleep(0.1)
    assert [e["type"] for e in verified(receiver)] == ["task.succeeded"]


async def test_faulty_upstream_answers_are_survived(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(
        task_id,
        Canned(b"", status=500),
        Canned(b"<html>oops</html>", headers={"content-type": "text/html"}),
        Canned({"errors": [{"msg": "bad"}]}, status=400),
        Canned(["not", "an", "object"]),
        Canned({}, status=429, headers={"retry-after": "0.1"}),
        Canned(b"", status=502),
        finished(task_id),
    )
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(1, timeout=15)
    data = verified(receiver)[0]["data"]
    assert data["status"] == "succeeded"
    assert data["polls"] == 7


async def test_one_poll_serves_every_tenant(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(
        task_id,
        answer(task_id, "processing", percentage="50"),
        answer(task_id, "processing", percentage="50"),
        finished(task_id),
    )
    first = await api.register(task_id, webhook_url=receiver.url + "/alpha", metadata={"t": "a"})
    second = await api.register(
        task_id, key="key-beta-0123456789", webhook_url=receiver.url + "/beta", metadata={"t": "b"}
    )
    assert first.status_code == second.status_code == 201
    await receiver.wait_for(2)
    events = verified(receiver)
    assert sorted(e["data"]["metadata"]["t"] for e in events) == ["a", "b"]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 2
    assert upstream.calls[task_id] == 3
    assert all(e["data"]["polls"] == 3 for e in events)


async def test_a_tenant_joining_a_final_task_gets_its_event_at_once(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    await api.register(task_id, webhook_url=receiver.url + "/alpha")
    await receiver.wait_for(1)
    response = await api.register(
        task_id, key="key-beta-0123456789", webhook_url=receiver.url + "/beta"
    )
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"
    await receiver.wait_for(2)
    assert upstream.calls[task_id] == 1, "no new poll for a task already final"
    assert verified(receiver)[1]["type"] == "task.succeeded"


async def test_events_empty_tracks_without_webhooks(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    await api.register(task_id, webhook_url=receiver.url, events=[])
    body = await api.wait_status(task_id, "succeeded")
    assert body["events"] == []
    await asyncio.sleep(0.2)
    assert receiver.received == []
    assert (await api.client.post(f"/v1/tasks/{task_id}/redeliver")).status_code == 409


@pytest.mark.parametrize("env_overrides", [{"RELAY_RETENTION": "1"}])
async def test_finished_tasks_expire_after_the_retention(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, redis: Any
) -> None:
    from relay.store import keys

    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    await api.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(1)
    await asyncio.sleep(0.2)
    assert await redis.exists(keys.task(task_id))
    await asyncio.sleep(1.5)
    left = [k async for k in redis.scan_iter(f"*{task_id}*")]
    assert left == [], "every key of the task expires with it"
    assert (await api.task(task_id)).status_code == 404
    listing = (await api.client.get("/v1/tasks")).json()
    assert task_id not in [t["task_id"] for t in listing["tasks"]]
