"""`POST /v1/upstream/webhook`: the upstream's own callback, checked against
RELAY_UPSTREAM_WEBHOOK_SECRET; a signal to fetch the task at once, never data to believe."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from relay.devtools.redis_server import RedisServer
from relay.settings import load_settings
from support.payloads import GRID, finished, new_id, processing
from support.servers import Receiver, ScriptedUpstream
from tests.conftest import WEBHOOK_SECRET, Api, fast_env

SECRET = "upstream-hook-secret"  # fast_env's RELAY_UPSTREAM_WEBHOOK_SECRET
PATH = "/v1/upstream/webhook"
# Registered with `upstream_webhook: true`, a task is polled at once, then every
# RELAY_POLL_MAX_INTERVAL: here a minute, so within a test only callbacks make fetches.
NO_POLLS = {"RELAY_POLL_MIN_INTERVAL": "1", "RELAY_POLL_MAX_INTERVAL": "60"}


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
    response = await post_hook(api, finished(task_id), secret)
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
    response = await post_hook(api, finished(task_id), secret)
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
    body: dict[str, Any] = finished(task_id)
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
    response = await post_hook(api, finished(task_id))
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
    response = await post_hook(api, finished(task_id))
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert (await api.task(task_id)).status_code == 404


# --- a tracked task -----------------------------------------------------------------------------


async def settle(upstream: ScriptedUpstream, task_id: str, calls: int, timeout: float = 5) -> None:
    """Wait until the upstream has been asked about the task `calls` times."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while upstream.calls[task_id] < calls:
        assert loop.time() < deadline, f"only {upstream.calls[task_id]} fetches of {task_id}"
        await asyncio.sleep(0.01)


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [NO_POLLS])
async def test_a_true_callback_makes_a_fetch_that_ends_the_task(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    response = await api.register(
        task_id, webhook_url=receiver.url, metadata={"order": 9}, upstream_webhook=True
    )
    assert response.status_code == 201
    running = await api.wait_status(task_id, "running")
    assert running["polls"] == 1 and upstream.calls[task_id] == 1

    # The task finished upstream, and the upstream calls back.
    upstream.script(task_id, finished(task_id))
    response = await post_hook(api, finished(task_id))
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "signalled"}
    # The next poll is a minute away: only the callback's fetch can bring the event.
    await receiver.wait_for(1, timeout=5)

    (event,) = [Webhook(WEBHOOK_SECRET).verify(r.body, r.headers) for r in receiver.received]
    assert event["type"] == "task.succeeded"
    data = event["data"]
    assert data["status"] == "succeeded" and data["upstream_status"] == "finished"
    assert data["progress"] == 100
    assert data["result"]["images"] == GRID["image_urls"]
    assert data["result"]["grid_image"] == GRID["original_image_url"]
    assert data["metadata"] == {"order": 9}
    assert data["polls"] == 2, "the callback's fetch counts as a poll"
    resource = (await api.task(task_id)).json()
    assert resource["status"] == "succeeded" and resource["polls"] == 2
    assert upstream.calls[task_id] == 2

    # The same webhook again (the upstream retries its own): nothing more.
    again = await post_hook(api, finished(task_id))
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "ignored"
    await asyncio.sleep(0.4)
    assert len(receiver.received) == 1
    assert upstream.calls[task_id] == 2
    assert (await api.task(task_id)).json() == resource


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [NO_POLLS])
async def test_a_forged_callback_changes_nothing(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    # The upstream's own fetch says processing, whatever a callback claims.
    upstream.script(task_id, processing(task_id, "30"))
    events = ["task.progress", "task.succeeded", "task.failed"]
    await api.register(task_id, webhook_url=receiver.url, events=events, upstream_webhook=True)
    await receiver.wait_for(1)  # the first poll's progress (running, 30)
    before = (await api.task(task_id)).json()

    forged = {"task_id": task_id, **GRID, "image_urls": ["https://evil.example/x.png"]}
    response = await post_hook(api, forged)
    assert response.status_code == 202 and response.json() == {"status": "signalled"}
    # The callback's fetch and its repeats (it still answered the old state) all come.
    await settle(upstream, task_id, 2 + 3, timeout=10)
    await asyncio.sleep(0.3)
    assert [e["type"] for e in receiver.events()] == ["task.progress"]
    after = (await api.task(task_id)).json()
    assert after["status"] == "running" and after["progress"] == 30
    assert after["result"] == before["result"]
    assert after["polls"] == 5
    # Then the safety net's minute: no more fetches for this callback.
    await asyncio.sleep(1.0)
    assert upstream.calls[task_id] == 5


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [NO_POLLS])
async def test_a_callback_ahead_of_the_fetch_is_fetched_again(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    # First poll, then the callback's own fetch still answer processing; the next is done.
    upstream.script(task_id, processing(task_id), processing(task_id), finished(task_id))
    await api.register(task_id, webhook_url=receiver.url, upstream_webhook=True)
    await api.wait_status(task_id, "running")
    assert (await post_hook(api, finished(task_id))).status_code == 202
    await receiver.wait_for(1, timeout=5)
    assert receiver.events()[0]["type"] == "task.succeeded"
    assert receiver.events()[0]["data"]["polls"] == 3
    assert upstream.calls[task_id] == 3


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [NO_POLLS])
async def test_progress_by_callback_comes_from_the_fetch(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id, "10"))
    events = ["task.progress", "task.succeeded"]
    await api.register(task_id, webhook_url=receiver.url, events=events, upstream_webhook=True)
    await receiver.wait_for(1)  # the first poll's progress (running, 10)

    upstream.script(task_id, processing(task_id, "55"))
    # The callback's body says 90; the fetch says 55, and the fetch is what counts.
    response = await post_hook(api, processing(task_id, "90"))
    assert response.status_code == 202 and response.json() == {"status": "signalled"}
    await receiver.wait_for(2, timeout=5)
    assert receiver.events()[1]["type"] == "task.progress"
    assert receiver.events()[1]["data"]["progress"] == 55
    resource = (await api.task(task_id)).json()
    assert resource["progress"] == 55 and resource["polls"] == 2


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [NO_POLLS])
async def test_one_upstream_webhook_serves_every_tenant(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    await api.register(task_id, webhook_url=receiver.url + "/a", upstream_webhook=True)
    await api.register(
        task_id, key="key-beta-0123456789", webhook_url=receiver.url + "/b", upstream_webhook=True
    )
    await api.wait_status(task_id, "running")
    upstream.script(task_id, finished(task_id))
    assert (await post_hook(api, finished(task_id))).status_code == 202
    await receiver.wait_for(2, timeout=5)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 2
    assert {e["type"] for e in receiver.events()} == {"task.succeeded"}
    assert upstream.calls[task_id] == 2, "one fetch serves both tenants"


GRACE = {"RELAY_FAILED_GRACE": "0.3", "RELAY_POLL_MIN_INTERVAL": "0.05"}


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [{**GRACE, "RELAY_POLL_MAX_INTERVAL": "60"}])
async def test_a_failed_by_callback_gets_the_grace_before_task_failed(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    await api.register(task_id, webhook_url=receiver.url, upstream_webhook=True)
    before = await api.wait_status(task_id, "running")
    assert before["upstream_status"] == "processing"

    failed = {
        "task_id": task_id,
        "task_type": "imagine",
        "status": "failed",
        "error": "Content policy violation",
    }
    upstream.script(task_id, failed)
    response = await post_hook(api, failed)
    assert response.status_code == 202, response.text
    await settle(upstream, task_id, 2)

    held = (await api.task(task_id)).json()
    if held["status"] == "running":  # read before the grace's fetch, as it nearly always is
        assert held["upstream_status"] in ("processing", "failed")
        assert held["completed_at"] is None
    # The grace wins over the safety net's minute: its fetch confirms the failure.
    await receiver.wait_for(1, timeout=5)
    (event,) = [Webhook(WEBHOOK_SECRET).verify(r.body, r.headers) for r in receiver.received]
    assert event["type"] == "task.failed"
    assert event["data"]["status"] == "failed"
    assert event["data"]["error"] == "Content policy violation"
    resource = (await api.task(task_id)).json()
    assert resource["status"] == "failed"
    assert resource["polls"] >= 3, "the first poll, the callback's fetch, the grace's fetch"


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [{**GRACE, "RELAY_POLL_MAX_INTERVAL": "60"}])
async def test_a_failed_by_callback_that_the_upstream_retries_ends_well(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    await api.register(task_id, webhook_url=receiver.url, upstream_webhook=True)
    await api.wait_status(task_id, "running")
    # The callback's fetch says failed; the upstream then retries and finishes the task.
    upstream.script(
        task_id,
        {"task_id": task_id, "status": "failed", "error": "transient"},
        finished(task_id),
    )
    upstream.calls[task_id] = 0
    response = await post_hook(api, {"task_id": task_id, "status": "failed", "error": "x"})
    assert response.json() == {"status": "signalled"}
    await receiver.wait_for(1, timeout=5)
    await asyncio.sleep(0.2)
    assert [e["type"] for e in receiver.events()] == ["task.succeeded"]


# --- upstream_webhook: true, and the callback never comes --------------------------------------


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(
    "env_overrides", [{"RELAY_POLL_MIN_INTERVAL": "0.05", "RELAY_POLL_MAX_INTERVAL": "0.4"}]
)
async def test_a_lost_callback_still_ends_the_task_by_polling(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    answers = [processing(task_id, str(p)) for p in (10, 40, 70)]
    upstream.script(task_id, *answers, finished(task_id))
    await api.register(task_id, webhook_url=receiver.url, upstream_webhook=True)
    await receiver.wait_for(1, timeout=10)
    assert receiver.events()[0]["type"] == "task.succeeded"
    assert upstream.calls[task_id] == 4
    # Polled at once, then only every RELAY_POLL_MAX_INTERVAL (a gap is never shorter).
    times = [t for t, tid in upstream.call_times if tid == task_id]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3 and min(gaps) >= 0.35, gaps


async def test_upstream_webhook_is_part_of_the_registration(api: Api) -> None:
    task_id = new_id()
    assert (await api.register(task_id, upstream_webhook=True)).status_code == 201
    assert (await api.register(task_id, upstream_webhook=True)).status_code == 200
    conflict = await api.register(task_id)
    assert_error(conflict, 409, "upstream_webhook")
    conflict = await api.register(task_id, upstream_webhook=False)
    assert_error(conflict, 409, "upstream_webhook")
    other = new_id()
    assert (await api.register(other, upstream_webhook=False)).status_code == 201
    assert (await api.register(other)).status_code == 200, "false is the default"


@pytest.mark.parametrize("value", ["yes", 1, 0, "true", [], {}])
async def test_upstream_webhook_must_be_a_boolean(api: Api, value: Any) -> None:
    assert_error(await api.register(new_id(), upstream_webhook=value), 422, "upstream_webhook")
