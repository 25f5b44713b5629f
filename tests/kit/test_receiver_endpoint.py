"""The kit's Starlette endpoint as a real task's webhook_url: real deliveries from a running
relay are verified, typed, handed on once (both dedup stores), and refused when forged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from relay_client import AsyncRelayClient
from relay_client.receiver import (
    Deduplicator,
    Event,
    MemoryDeduplicator,
    TaskProgress,
    TaskSucceeded,
    Verifier,
    sign,
)
from relay_client.receiver.endpoint import webhook_app
from relay_client.receiver.redis_store import RedisDeduplicator

from support.payloads import GRID
from support.servers import ScriptedUpstream
from tests.conftest import Api
from tests.kit import ALPHA, WEBHOOK_SECRET, base_url, finishing
from tests.kit.serving import served
from tests.kit.test_models import TASK

pytestmark = pytest.mark.usefixtures("worker")

EVENTS = ["task.progress", "task.succeeded", "task.failed", "task.timed_out"]


@pytest.fixture
async def client(api: Api) -> AsyncIterator[AsyncRelayClient]:
    async with AsyncRelayClient(base_url(api), ALPHA) as relay:
        yield relay


@pytest.fixture(params=["memory", "redis"])
def dedup(request: pytest.FixtureRequest, redis: Redis) -> Deduplicator:
    if request.param == "memory":
        return MemoryDeduplicator()
    return RedisDeduplicator(redis, prefix="kit-test:")


async def next_events(queue: asyncio.Queue[Event], count: int) -> list[Event]:
    return [await asyncio.wait_for(queue.get(), 10) for _ in range(count)]


async def delivered(client: AsyncRelayClient, task_id: str, attempts: int) -> list[Any]:
    """The task's final delivery once it has `attempts` attempts and is delivered."""
    for _ in range(200):
        final = [d for d in await client.deliveries(task_id) if d.type != "task.progress"]
        if final and final[0].status == "delivered" and len(final[0].attempts) >= attempts:
            return list(final[0].attempts)
        await asyncio.sleep(0.05)
    raise AssertionError(await client.deliveries(task_id))


async def test_real_deliveries_are_verified_typed_and_handed_on_once(
    client: AsyncRelayClient, upstream: ScriptedUpstream, dedup: Deduplicator
) -> None:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    app = webhook_app(Verifier(WEBHOOK_SECRET), queue, path="/hooks", dedup=dedup)
    async with served(app) as url:
        task_id = finishing(upstream)
        await client.register(
            task_id, webhook_url=url + "/hooks", events=EVENTS, metadata={"order": 42}
        )
        progress, final = await next_events(queue, 2)
        assert isinstance(progress, TaskProgress) and progress.task.progress == 5
        assert isinstance(final, TaskSucceeded)
        assert final.task.task_id == task_id and final.task.metadata == {"order": 42}
        assert final.task.result.images == tuple(GRID["image_urls"])
        assert progress.id != final.id
        # A redelivery carries the same webhook-id: answered 2xx, not handed on again.
        await client.redeliver(task_id)
        attempts = await delivered(client, task_id, 2)
        assert [a.status_code for a in attempts] == [200, 200]
        assert "duplicate" in (attempts[-1].response or "")
        await asyncio.sleep(0.1)
        assert queue.empty()


@pytest.mark.parametrize(
    "env_overrides",
    [{"RELAY_WEBHOOK_SECRET": "whsec_b2xkLXNlY3JldC0wMTIzNDU2Nzg5 " + WEBHOOK_SECRET}],
)
async def test_a_relay_signing_with_two_secrets_is_accepted_by_either(
    client: AsyncRelayClient, upstream: ScriptedUpstream
) -> None:
    queues: list[asyncio.Queue[Event]] = [asyncio.Queue(), asyncio.Queue()]
    old = webhook_app(Verifier("whsec_b2xkLXNlY3JldC0wMTIzNDU2Nzg5"), queues[0])
    new = webhook_app(Verifier(WEBHOOK_SECRET), queues[1])
    async with served(old) as old_url, served(new) as new_url:
        for url, queue in zip((old_url, new_url), queues, strict=True):
            task_id = finishing(upstream)
            await client.register(task_id, webhook_url=url)
            (event,) = await next_events(queue, 1)
            assert isinstance(event, TaskSucceeded) and event.task.task_id == task_id


async def test_a_receiver_with_another_secret_refuses_with_401(
    client: AsyncRelayClient, upstream: ScriptedUpstream
) -> None:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    app = webhook_app(Verifier("whsec_c29tZW9uZSBlbHNl"), queue)
    async with served(app) as url:
        task_id = finishing(upstream)
        await client.register(task_id, webhook_url=url)
        for _ in range(200):
            found = await client.deliveries(task_id)
            if found and found[0].status == "failed":
                break
            await asyncio.sleep(0.05)
        (delivery,) = found
        assert delivery.status == "failed"
        assert {a.status_code for a in delivery.attempts} == {401}
    assert queue.empty()


async def test_a_failing_handler_gets_the_relays_retry(
    client: AsyncRelayClient, upstream: ScriptedUpstream, dedup: Deduplicator
) -> None:
    calls: list[Event] = []

    async def handler(event: Event) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("the database is away")

    app = webhook_app(Verifier(WEBHOOK_SECRET), handler, dedup=dedup, inline=True)
    async with served(app) as url:
        task_id = finishing(upstream)
        await client.register(task_id, webhook_url=url)
        attempts = await delivered(client, task_id, 2)
    assert [a.status_code for a in attempts] == [500, 200]
    assert [e.id for e in calls] == [calls[0].id] * 2


async def test_the_answer_does_not_wait_for_the_handler(
    client: AsyncRelayClient, upstream: ScriptedUpstream
) -> None:
    release = asyncio.Event()
    handled: list[Event] = []

    async def handler(event: Event) -> None:
        await release.wait()
        handled.append(event)

    async with served(webhook_app(Verifier(WEBHOOK_SECRET), handler)) as url:
        task_id = finishing(upstream)
        await client.register(task_id, webhook_url=url)
        # Delivered while the handler is still held: the 200 came first.
        (attempt,) = await delivered(client, task_id, 1)
        assert attempt.status_code == 200 and not handled
        release.set()
        for _ in range(100):
            if handled:
                break
            await asyncio.sleep(0.02)
    assert [e.task.task_id for e in handled] == [task_id]


BODY = json.dumps({"type": "task.succeeded", "timestamp": "2026-11-29T10:00:06Z", "data": TASK})


async def test_forged_and_malformed_posts_are_refused(redis: Redis) -> None:
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=1)
    app = webhook_app(Verifier(WEBHOOK_SECRET), queue)
    good = sign(WEBHOOK_SECRET, BODY.encode(), webhook_id="msg_direct")
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (BODY.encode() + b" ", good, 401),
        (BODY.encode(), sign("whsec_c29tZW9uZSBlbHNl", BODY.encode()), 401),
        (BODY.encode(), sign(WEBHOOK_SECRET, BODY.encode(), timestamp=1_000_000_000), 401),
        (BODY.encode(), {"content-type": "application/json"}, 400),
        (b'{"not": "an event"}', sign(WEBHOOK_SECRET, b'{"not": "an event"}'), 400),
        (b"x" * (300 * 1024), good, 413),
    ]
    async with served(app) as url, httpx.AsyncClient(base_url=url) as http:
        for body, headers, status in cases:
            answer = await http.post("/", content=body, headers=headers)
            assert answer.status_code == status, (body[:40], answer.text)
        assert queue.empty()
        assert (await http.post("/", content=BODY, headers=good)).json() == {"status": "accepted"}
        again = await http.post("/", content=BODY, headers=good)
        assert again.status_code == 200 and again.json() == {"status": "duplicate"}
        # A full queue answers 503 and forgets the id, so the relay's retry gets through.
        other = sign(WEBHOOK_SECRET, BODY.encode(), webhook_id="msg_other")
        assert (await http.post("/", content=BODY, headers=other)).status_code == 503
        queue.get_nowait()
        assert (await http.post("/", content=BODY, headers=other)).status_code == 200
        assert queue.get_nowait().id == "msg_other"
