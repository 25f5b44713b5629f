"""Redis dies (SIGKILL) under a running relay and comes back on the same port and data.

Its own `redis-server` (appendonly, everysec), not the session's; `relay api` and
`relay worker` as real processes. While Redis is away the API answers 503 in its
JSON error shape (never 500) and stays alive; when Redis is back both processes
reconnect by themselves, registrations made before the crash are still there,
and every final event is delivered.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from relay.devtools.redis_server import RedisServer, free_port
from support.payloads import answer, finished, new_id
from support.processes import Proc, clean_env, wait_ready
from support.servers import Receiver, ScriptedUpstream
from support.waiting import eventually
from tests.conftest import WEBHOOK_SECRET, fast_env

FINAL = {"task.succeeded", "task.failed", "task.timed_out"}
EVENTS = ["task.progress", *sorted(FINAL)]


@pytest.fixture
def own_redis() -> Iterator[list[RedisServer]]:
    """A private appendonly Redis; the list holds the current incarnation."""
    servers = [RedisServer(appendonly=True).start()]
    data_dir = servers[0].dir
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def restart(old: RedisServer) -> RedisServer:
    """A new redis-server on the same port, reading the same data directory."""
    new = RedisServer(port=old.port, appendonly=True)
    shutil.rmtree(new.dir, ignore_errors=True)
    new.dir = old.dir
    return new.start()


def assert_error_shape(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def script_tasks(upstream: ScriptedUpstream, count: int, quick: int) -> list[str]:
    """`count` tasks: the first `quick` end at once, the others run for seconds."""
    rng = random.Random()
    task_ids = []
    for i in range(count):
        task_id = new_id()
        running = [answer(task_id, "processing", percentage=str(p)) for p in (10, 40, 70)]
        repeats = 1 if i < quick else rng.randint(6, 12)
        upstream.script(
            task_id,
            answer(task_id, "pending"),
            *[a for a in running for _ in range(repeats)],
            finished(task_id),
        )
        task_ids.append(task_id)
    return task_ids


async def register(client: httpx.AsyncClient, task_ids: list[str], url: str) -> None:
    for i, task_id in enumerate(task_ids):
        fields: dict[str, Any] = {"task_id": task_id, "webhook_url": url}
        if i % 2:
            fields["events"] = EVENTS
        reply = await client.post("/v1/tasks", json=fields)
        assert reply.status_code == 201, reply.text


async def outage(client: httpx.AsyncClient, task_id: str, url: str, seconds: float) -> int:
    """Call the API while Redis is down: 503 in the error shape, liveness still 200."""
    down_since = time.monotonic()
    calls = 0
    while time.monotonic() - down_since < seconds:
        late = new_id()
        assert_error_shape(
            await client.post("/v1/tasks", json={"task_id": late, "webhook_url": url}), 503
        )
        assert_error_shape(await client.get("/readyz"), 503)
        assert_error_shape(await client.get(f"/v1/tasks/{task_id}"), 503)
        assert_error_shape(await client.get(f"/v1/tasks/{task_id}/deliveries"), 503)
        assert (await client.get("/healthz")).status_code == 200
        calls += 1
        await asyncio.sleep(0.2)
    return calls


async def test_api_answers_503_while_redis_is_down_and_keeps_registrations(
    own_redis: list[RedisServer], upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    server = own_redis[0]
    env = clean_env(**fast_env(server.url, upstream.url))
    port = free_port()
    api = Proc("api", "--port", str(port), env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base_url, api)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"authorization": "Bearer key-alpha-0123456789"}, timeout=15
        ) as client:
            task_ids = script_tasks(upstream, 20, 0)
            await register(client, task_ids, receiver.url)
            await asyncio.sleep(1.5)  # appendfsync everysec: the registrations are on disk

            server.kill()
            assert await outage(client, task_ids[0], receiver.url, 2.0) > 3
            assert api.alive(), api.output()[-3000:]

            own_redis[0] = restart(server)

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually(ready, 10, "the API is ready again once Redis is back")
            for i, task_id in enumerate(task_ids):
                reply = await client.get(f"/v1/tasks/{task_id}")
                assert reply.status_code == 200, f"{task_id} lost in the restart: {reply.text}"
                assert reply.json()["webhook_url"] == receiver.url
                # The identical registration is found again: 200, not a new one.
                fields: dict[str, Any] = {"task_id": task_id, "webhook_url": receiver.url}
                if i % 2:
                    fields["events"] = EVENTS
                again = await client.post("/v1/tasks", json=fields)
                assert again.status_code == 200, again.text
            fresh = new_id()
            reply = await client.post("/v1/tasks", json={"task_id": fresh, "events": []})
            assert reply.status_code == 201, reply.text
        assert "Traceback" not in api.output(), api.output()[-3000:]
    finally:
        api.close()


async def test_worker_survives_a_redis_restart_and_every_final_event_is_delivered(
    own_redis: list[RedisServer], upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    server = own_redis[0]
    env = clean_env(**fast_env(server.url, upstream.url))
    port = free_port()
    api = Proc("api", "--port", str(port), env=env)
    worker = Proc("worker", env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base_url, api)
        await worker.wait_output("worker started")
        async with httpx.AsyncClient(
            base_url=base_url, headers={"authorization": "Bearer key-alpha-0123456789"}, timeout=15
        ) as client:
            # Some tasks end before the crash, most are still running through it.
            task_ids = script_tasks(upstream, 40, 5)
            await register(client, task_ids, receiver.url)
            await asyncio.sleep(1.5)  # appendfsync everysec: the registrations are on disk

            polled_before = sum(upstream.calls.values())
            server.kill()
            await outage(client, task_ids[-1], receiver.url, 3.0)
            assert worker.alive(), f"the worker died with Redis:\n{worker.output()[-3000:]}"

            own_redis[0] = restart(server)

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually(ready, 10, "the API is ready again once Redis is back")

            # A registration after the restart works as well.
            after = new_id()
            upstream.script(after, finished(after))
            reply = await client.post(
                "/v1/tasks", json={"task_id": after, "webhook_url": receiver.url}
            )
            assert reply.status_code == 201, reply.text
            task_ids.append(after)

            def finals() -> set[str]:
                return {e["data"]["task_id"] for e in receiver.events() if e["type"] in FINAL}

            async def all_final_delivered() -> bool:
                return set(task_ids) <= finals()

            try:
                await eventually(all_final_delivered, 30, "every final event delivered", 0.2)
            except AssertionError as exc:
                missing = sorted(set(task_ids) - finals())
                states = [(await client.get(f"/v1/tasks/{t}")).json() for t in missing[:3]]
                raise AssertionError(
                    f"{exc}: {len(missing)} missing, e.g. {states}\n"
                    f"worker:\n{worker.output()[-4000:]}\napi:\n{api.output()[-2000:]}"
                ) from None

            async def listings_delivered() -> bool:
                for task_id in task_ids:
                    listing = (await client.get(f"/v1/tasks/{task_id}/deliveries")).json()
                    if any(d["status"] != "delivered" for d in listing["deliveries"]):
                        return False
                return True

            await eventually(listings_delivered, 10, "every delivery shows delivered", 0.3)

        hook = Webhook(WEBHOOK_SECRET)
        for received in receiver.received:
            hook.verify(received.body, received.headers)
        assert sum(upstream.calls.values()) > polled_before, "polling resumed"
        assert worker.alive(), worker.output()[-3000:]
    finally:
        api.close()
        worker.close()
