"""`POST /v1/upstream/webhook`: the upstream's own callback, checked against
RELAY_UPSTREAM_WEBHOOK_SECRET and handled like a poll's answer (without counting as one)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from relay.devtools.redis_server import RedisServer
from relay.settings import load_settings
from tests.api2 import GRID, new_id
from tests.conftest import WEBHOOK_SECRET, Api, fast_env
from tests.servers import Receiver, ScriptedUpstream

SECRET = "upstream-hook-secret"  # fast_env's RELAY_UPSTREAM_WEBHOOK_SECRET
PATH = "/v1/upstream/webhook"
# Polls stay out of the way: the first fetch comes at once, the next not for 30 s.
NO_POLLS = {"RELAY_POLL_MIN_INTERVAL": "30", "RELAY_POLL_MAX_INTERVAL": "60"}


def processing(task_id: str, percentage: str = "30") -> dict[str, Any]:
    return {
        "task_id": task_id,
        "task_type": "imagine",
        "model": "midjourney",
        "status": "processing",
        "percentage": percentage,
    }


async def post_hook(
    api: Api,
    body: Any,
    secret: str | None = SECRET,
    *,
    content: bytes | None = None,
    content_type: str = "application/json",
) -> httpx.Response:
    # The upstream sends no bearer key: take the client's default off.
    headers = {"authorization": "", "content-type": content_type}
    if secret is not None:
        headers["x-webhook-secret"] = secret
    if content is None:
        return await api.client.post(PATH, json=body, headers=headers)
    return await api.client.post(PATH, content=content, headers=headers)


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] and error["message"], error
    if field is not None:
        assert error.get("field") == field, error


# --- the secret --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret", [None, "", "wrong", SECRET + "x", SECRET.upper(), "Bearer " + SECRET]
)
async def test_a_missing_or_wrong_secret_is_401(api: Api, secret: str | None) -> None:
    task_id = new_id()
    await api.register(task_id)
    response = await post_hook(api, {"task_id": task_id, **GRID}, secret)
    assert_error(response, 401)
    assert (await api.task(task_id)).json()["status"] == "queued", "nothing was applied"


async def test_a_bearer_key_is_no_substitute_for_the_secret(api: Api) -> None:
    response = await api.client.post(PATH, json={"task_id": new_id(), **GRID})
    assert_error(response, 401)


@pytest.fixture
async def api_without_hook_secret(
    redis_server: RedisServer, upstream: ScriptedUpstream, redis: Redis
) -> AsyncIterator[Api]:
    env = fast_env(redis_server.url, upstream.url)
    del env["RELAY_UPSTREAM_WEBHOOK_SECRET"]
    settings = load_settings(env)
    assert settings.upstream_webhook_secret is None
    async with Api(settings) as served:
        yield served


@pytest.mark.parametrize("secret", [None, "", SECRET, "anything"])
async def test_with_no_secret_configured_every_upstream_webhook_is_401(
    api_without_hook_secret: Api, secret: str | None
) -> None:
    api = api_without_hook_secret
    task_id = new_id()
    assert (await api.register(task_id)).status_code == 201
    response = await post_hook(api, {"task_id": task_id, **GRID}, secret)
    assert_error(response, 401)
    assert (await api.task(task_id)).json()["status"] == "queued"


# --- malformed bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"{not json", b"", b"\xff\xfe", b'{"task_id": "x",}', b"[1, 2"]
)
async def test_a_body_that_is_not_json_is_400(api: Api, content: bytes) -> None:
    assert_error(await post_hook(api, None, content=content), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"status": "finished"},
        {"task_id": None, "status": "finished"},
        {"task_id": "not-a-uuid", "status": "finished"},
        {"task_id": 12, "status": "finished"},
        [{"task_id": "550e8400-e29b-41d4-a716-446655440000", "status": "finished"}],
        "finished",
    ],
)
async def test_a_body_without_a_task_id_is_400(api: Api, body: Any) -> None:
    assert_error(await post_hook(api, body), 400, "task_id")


@pytest.mark.parametrize("status", [None, 7, "", "   ", ["finished"], {"word": "finished"}])
async def test_a_body_with_a_bad_status_is_400(api: Api, status: Any) -> None:
    task_id = new_id()
    await api.register(task_id)
    body: dict[str, Any] = {"task_id": task_id, **GRID}
    if status is None:
        del body["status"]
    else:
        body["status"] = status
    assert_error(await post_hook(api, body), 400)
    assert (await api.task(task_id)).json()["status"] == "queued"


async def test_a_body_that_is_not_application_json_is_415(api: Api) -> None:
    task_id = new_id()
    response = await post_hook(
        api, None, content=f'{{"task_id": "{task_id}"}}'.encode(), content_type="text/plain"
    )
    assert_error(response, 415)


async def test_a_body_over_64_kib_is_413(api: Api) -> None:
    body = {"task_id": new_id(), **GRID, "prompt": "x" * (64 * 1024)}
    assert_error(await post_hook(api, body), 413)


async def test_a_task_nobody_tracks_is_202_and_ignored(api: Api) -> None:
    task_id = new_id()
    response = await post_hook(api, {"task_id": task_id, **GRID})
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "ignored"}
    assert (await api.task(task_id)).status_code == 404
    # Nothing was created for it: registering it later starts from scratch.
    registered = await api.register(task_id)
    assert registered.status_code == 201
    assert registered.json()["status"] == "queued"
    assert registered.json()["polls"] == 0


async def test_a_deleted_task_is_ignored_too(api: Api) -> None:
    task_id = new_id()
    await api.register(task_id)
    assert (await api.client.delete(f"/v1/tasks/{task_id}")).status_code == 204
    response = await post_hook(api, {"task_id": task_id, **GRID})
    assert response.status_code == 202
    assert response.json()["status"] in ("ignored", "unchanged", "accepted")
    assert (await api.task(task_id)).status_code == 404


# --- a tracked task -----------------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [NO_POLLS])
async def test_the_upstream_webhook_finishes_a_task_at_once_without_a_poll(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    # Polling alone would never finish it.
    upstream.script(task_id, processing(task_id))
    response = await api.register(task_id, webhook_url=receiver.url, metadata={"order": 9})
    assert response.status_code == 201
    running = await api.wait_status(task_id, "running")
    assert running["polls"] == 1 and upstream.calls[task_id] == 1

    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    response = await post_hook(api, {"task_id": task_id, **GRID})
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted"}
    await receiver.wait_for(1, timeout=5)
    took = loop.time() - sent_at
    assert took < 1.0, f"the consumer's webhook came {took:.2f} s after the upstream's"

    (event,) = [Webhook(WEBHOOK_SECRET).verify(r.body, r.headers) for r in receiver.received]
    assert event["type"] == "task.succeeded"
    data = event["data"]
    assert data["status"] == "succeeded" and data["upstream_status"] == "finished"
    assert data["progress"] == 100
    assert data["result"]["images"] == GRID["image_urls"]
    assert data["result"]["grid_image"] == GRID["original_image_url"]
    assert data["metadata"] == {"order": 9}
    assert data["polls"] == 1, "the upstream's webhook is not a poll"
    resource = (await api.task(task_id)).json()
    assert resource["status"] == "succeeded" and resource["polls"] == 1
    assert resource["completed_at"] is not None
    assert upstream.calls[task_id] == 1

    # The same webhook again (the upstream retries its own): no second event.
    again = await post_hook(api, {"task_id": task_id, **GRID})
    assert again.status_code == 202, again.text
    assert again.json()["status"] in ("unchanged", "ignored")
    await asyncio.sleep(0.4)
    assert len(receiver.received) == 1
    assert (await api.task(task_id)).json() == resource


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [NO_POLLS])
async def test_progress_by_webhook_updates_the_resource_and_sends_progress(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id, "10"))
    events = ["task.progress", "task.succeeded"]
    await api.register(task_id, webhook_url=receiver.url, events=events)
    await receiver.wait_for(1)  # the first poll's progress (running, 10)

    response = await post_hook(api, processing(task_id, "55"))
    assert response.status_code == 202 and response.json() == {"status": "accepted"}
    await receiver.wait_for(2, timeout=2)
    assert receiver.events()[1]["type"] == "task.progress"
    assert receiver.events()[1]["data"]["progress"] == 55
    resource = (await api.task(task_id)).json()
    assert resource["progress"] == 55 and resource["polls"] == 1

    # The same progress again changes nothing.
    again = await post_hook(api, processing(task_id, "55"))
    assert again.json() == {"status": "unchanged"}
    await post_hook(api, {"task_id": task_id, **GRID})
    await receiver.wait_for(3, timeout=2)
    await asyncio.sleep(0.2)
    assert [e["type"] for e in receiver.events()] == [
        "task.progress",
        "task.progress",
        "task.succeeded",
    ]


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [NO_POLLS])
async def test_one_upstream_webhook_serves_every_tenant(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    await api.register(task_id, webhook_url=receiver.url + "/a")
    await api.register(task_id, key="key-beta", webhook_url=receiver.url + "/b")
    await api.wait_status(task_id, "running")
    assert (await post_hook(api, {"task_id": task_id, **GRID})).status_code == 202
    await receiver.wait_for(2, timeout=2)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 2
    assert {e["type"] for e in receiver.events()} == {"task.succeeded"}


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(
    "env_overrides",
    [{"RELAY_FAILED_GRACE": "0.3", "RELAY_POLL_MIN_INTERVAL": "0.05"}],
)
async def test_a_failed_by_webhook_gets_the_grace_before_task_failed(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    await api.register(task_id, webhook_url=receiver.url)
    before = await api.wait_status(task_id, "running")
    assert before["upstream_status"] == "processing"

    loop = asyncio.get_running_loop()
    failed = {
        "task_id": task_id,
        "task_type": "imagine",
        "status": "failed",
        "error": "Content policy violation",
    }
    sent_at = loop.time()
    response = await post_hook(api, failed)
    # From now on the upstream says `failed` too, so the poll after the grace confirms it.
    upstream.script(task_id, failed)
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted"}

    held = (await api.task(task_id)).json()
    assert held["status"] == "running", "during the grace the status stays as it was"
    assert held["upstream_status"] == "failed"
    assert held["completed_at"] is None
    await asyncio.sleep(0.15)
    assert receiver.received == [], "no task.failed before the grace is over"
    assert (await api.task(task_id)).json()["status"] == "running"

    await receiver.wait_for(1, timeout=5)
    waited = loop.time() - sent_at
    assert waited >= 0.28, f"task.failed came {waited:.2f} s after the webhook, within the grace"
    (event,) = [Webhook(WEBHOOK_SECRET).verify(r.body, r.headers) for r in receiver.received]
    assert event["type"] == "task.failed"
    assert event["data"]["status"] == "failed"
    assert event["data"]["error"] == "Content policy violation"
    resource = (await api.task(task_id)).json()
    assert resource["status"] == "failed"
    assert resource["polls"] >= 2, "a poll after the grace confirmed it"


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(
    "env_overrides",
    [{"RELAY_FAILED_GRACE": "0.3", "RELAY_POLL_MIN_INTERVAL": "0.05"}],
)
async def test_a_failed_by_webhook_that_the_upstream_retries_ends_well(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    await api.register(task_id, webhook_url=receiver.url)
    await api.wait_status(task_id, "running")
    response = await post_hook(api, {"task_id": task_id, "status": "failed", "error": "transient"})
    # The upstream retried its failed task: the poll after the grace finds it finished.
    upstream.script(task_id, {"task_id": task_id, **GRID})
    assert response.json() == {"status": "accepted"}
    await receiver.wait_for(1, timeout=5)
    await asyncio.sleep(0.2)
    assert [e["type"] for e in receiver.events()] == ["task.succeeded"]
