"""The client against a running relay (API, worker, the session's Redis, a scripted
upstream, a loopback receiver): every call, the error mapping, paging, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from relay_client import (
    AsyncRelayClient,
    Conflict,
    Delivery,
    InvalidField,
    NoEvent,
    NotFound,
    QuotaExceeded,
    RelayClient,
    TooManyRequests,
    Unauthorized,
)

from support.payloads import GRID, new_id, processing
from support.servers import Receiver, ScriptedUpstream
from tests.conftest import Api
from tests.kit import ALPHA, ALPHA_2, BETA, base_url, finishing

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def client(api: Api) -> AsyncIterator[AsyncRelayClient]:
    async with AsyncRelayClient(base_url(api), ALPHA) as relay:
        yield relay


def running(upstream: ScriptedUpstream) -> str:
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    return task_id


async def test_register_is_idempotent_and_a_conflict_names_its_field(
    client: AsyncRelayClient, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = running(upstream)
    first = await client.register(
        task_id, webhook_url=receiver.url, events=["task.succeeded"], metadata={"n": 1}
    )
    assert first.created and first.task.task_id == task_id
    assert first.task.webhook_url == receiver.url and first.task.events == ("task.succeeded",)
    assert first.task.metadata == {"n": 1} and not first.task.final
    again = await client.register(
        task_id, webhook_url=receiver.url, events=["task.succeeded"], metadata={"n": 1}
    )
    assert not again.created and again.task.task_id == task_id
    for field, change in [
        ("webhook_url", {"webhook_url": receiver.url + "/other"}),
        ("events", {"events": ["task.failed"]}),
        ("metadata", {"metadata": {"n": 2}}),
    ]:
        fields = {"webhook_url": receiver.url, "events": ["task.succeeded"], "metadata": {"n": 1}}
        with pytest.raises(Conflict) as caught:
            await client.register(task_id, **(fields | change))  # type: ignore[arg-type]
        assert caught.value.field == field and caught.value.status == 409
        assert caught.value.code == "conflict" and field in caught.value.message


async def test_a_key_of_the_same_tenant_sees_the_task_and_another_tenant_does_not(
    api: Api, client: AsyncRelayClient, upstream: ScriptedUpstream
) -> None:
    task_id = running(upstream)
    await client.register(task_id, events=[])
    async with AsyncRelayClient(base_url(api), ALPHA_2) as rotated:
        assert (await rotated.get(task_id)).task_id == task_id
    async with AsyncRelayClient(base_url(api), BETA) as beta:
        with pytest.raises(NotFound) as caught:
            await beta.get(task_id)
    assert caught.value.code == "not_found"


async def test_errors_carry_the_contracts_code_and_field(
    api: Api, client: AsyncRelayClient
) -> None:
    with pytest.raises(NotFound):
        await client.get(new_id())
    with pytest.raises(NotFound):
        await client.get("not-a-uuid")
    with pytest.raises(InvalidField) as invalid:
        await client.register("not-a-uuid")
    assert (invalid.value.status, invalid.value.field) == (422, "task_id")
    with pytest.raises(InvalidField) as events:
        await client.register(new_id(), events=["task.exploded"])
    assert events.value.field == "events"
    with pytest.raises(InvalidField) as url:
        await client.register(new_id(), webhook_url="ftp://example.com/hook")
    assert url.value.field == "webhook_url"
    async with AsyncRelayClient(base_url(api), "not-a-key-of-this-relay") as stranger:
        with pytest.raises(Unauthorized) as refused:
            await stranger.get(new_id())
    assert refused.value.status == 401


async def test_delete_stops_tracking(client: AsyncRelayClient, upstream: ScriptedUpstream) -> None:
    task_id = running(upstream)
    await client.register(task_id, events=[])
    assert await client.delete(task_id) is None
    with pytest.raises(NotFound):
        await client.get(task_id)
    with pytest.raises(NotFound):
        await client.delete(task_id)


async def test_listing_follows_the_cursor_over_every_page(
    client: AsyncRelayClient, upstream: ScriptedUpstream
) -> None:
    ids = [running(upstream) for _ in range(7)]
    for task_id in ids:
        await client.register(task_id, events=[])
    pages = [page async for page in client.task_pages(page_size=3)]
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert pages[-1].next_cursor is None and all(p.next_cursor for p in pages[:-1])
    listed = [task.task_id async for task in client.list_tasks(page_size=2)]
    assert sorted(listed) == sorted(ids), "every task once, across pages"


async def test_listing_by_status(client: AsyncRelayClient, upstream: ScriptedUpstream) -> None:
    done, busy = finishing(upstream), running(upstream)
    for task_id in (done, busy):
        await client.register(task_id, events=[])
    assert (await client.wait(done, timeout=10)).status == "succeeded"
    succeeded = [t.task_id async for t in client.list_tasks(status="succeeded")]
    assert done in succeeded and busy not in succeeded


async def test_wait_answers_the_final_task(
    client: AsyncRelayClient, upstream: ScriptedUpstream
) -> None:
    task_id = finishing(upstream)
    await client.register(task_id, events=[])
    task = await client.wait(task_id, timeout=10)
    assert task.final and task.status == "succeeded" and task.progress == 100
    assert task.result.images == tuple(GRID["image_urls"])
    assert task.result.grid_image == GRID["original_image_url"]
    assert task.completed_at is not None and task.polls >= 2


async def test_wait_with_a_timeout_answers_the_task_as_it_is(
    client: AsyncRelayClient, upstream: ScriptedUpstream
) -> None:
    task_id = running(upstream)
    await client.register(task_id, events=[])
    task = await client.wait(task_id, timeout=1)
    assert not task.final and task.status == "running" and task.progress == 5
    with pytest.raises(NotFound):
        await client.wait(new_id(), timeout=1)


async def test_deliveries_and_redelivery(
    client: AsyncRelayClient, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = finishing(upstream)
    await client.register(task_id, webhook_url=receiver.url)
    await receiver.wait_for(1, task_id=task_id)
    (delivery,) = await delivered(client, task_id, 1)
    assert delivery.type == "task.succeeded" and delivery.task_id == task_id
    assert delivery.attempts[0].status_code == 204
    # A new attempt series of the same delivery: same id, same webhook-id.
    assert await client.redeliver(task_id) == delivery.id
    await receiver.wait_for(2, task_id=task_id)
    assert await client.redeliver_delivery(delivery.id) == delivery.id
    await receiver.wait_for(3, task_id=task_id)
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.webhook_id] * 3
    (series,) = await client.deliveries(task_id)
    assert len(series.attempts) == 3
    with pytest.raises(NotFound):
        await client.redeliver_delivery("no-such-delivery")


async def test_redeliver_before_any_event_is_a_conflict(
    client: AsyncRelayClient, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = running(upstream)
    await client.register(task_id, webhook_url=receiver.url)
    with pytest.raises(NoEvent) as caught:
        await client.redeliver(task_id)
    assert isinstance(caught.value, Conflict) and caught.value.code == "no_event"
    with pytest.raises(NotFound):
        await client.redeliver(new_id())


# Held receivers wait for a probe (up to seconds): this test is about the listing, not holds.
@pytest.mark.parametrize("env_overrides", [{"RELAY_RECEIVER_HOLD_AFTER": "0"}])
async def test_failed_deliveries_are_listed_and_started_again(
    client: AsyncRelayClient, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    receiver.answers = [500] * 1000
    ids = [finishing(upstream) for _ in range(3)]
    for task_id in ids:
        await client.register(task_id, webhook_url=receiver.url)
    failed: list[Delivery] = []
    for _ in range(200):
        failed = [d async for d in client.failed_deliveries(page_size=2)]
        if len(failed) == len(ids):
            break
        await asyncio.sleep(0.05)
    assert sorted(d.task_id for d in failed) == sorted(ids)
    assert all(d.status == "failed" and len(d.attempts) >= 2 for d in failed), failed
    pages = [page async for page in client.failed_delivery_pages(page_size=2)]
    assert [len(p.items) for p in pages] == [2, 1]
    receiver.answers = []
    started = await client.redeliver_failed()
    assert len(started) == len(ids)
    for task_id in ids:
        await delivered(client, task_id, 1)


async def delivered(client: AsyncRelayClient, task_id: str, count: int) -> list[Delivery]:
    for _ in range(200):
        found = [d for d in await client.deliveries(task_id) if d.status == "delivered"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{task_id}: {await client.deliveries(task_id)}")


async def test_the_sync_client_makes_the_same_calls(api: Api, upstream: ScriptedUpstream) -> None:
    task_id, other = finishing(upstream), running(upstream)

    def session() -> None:
        with RelayClient(base_url(api), ALPHA) as relay:
            assert relay.register(task_id, events=[]).created
            assert not relay.register(task_id, events=[]).created
            with pytest.raises(Conflict) as caught:
                relay.register(task_id, events=["task.failed"])
            assert caught.value.field == "events"
            relay.register(other, events=[], metadata={"k": "v"})
            assert relay.get(other).metadata == {"k": "v"}
            final = relay.wait(task_id, timeout=10)
            assert final.status == "succeeded" and final.final
            assert not relay.wait(other, timeout=1).final
            assert sorted(t.task_id for t in relay.list_tasks(page_size=1)) == sorted(
                [other, task_id]
            )
            # A full last page may still carry a cursor, to an empty page.
            assert [len(p.items) for p in relay.task_pages(page_size=1)][:2] == [1, 1]
            assert relay.deliveries(task_id) == []
            with pytest.raises(NoEvent):
                relay.redeliver(other)
            assert list(relay.failed_deliveries()) == []
            assert relay.redeliver_failed() == []
            relay.delete(other)
            with pytest.raises(NotFound):
                relay.get(other)

    # The relay serves from this event loop: the blocking client runs beside it.
    await asyncio.to_thread(session)


@pytest.mark.parametrize("env_overrides", [{"RELAY_TENANT_MAX_TASKS": "2"}])
async def test_a_registration_past_the_tenants_quota_raises_quota_exceeded(
    client: AsyncRelayClient, upstream: ScriptedUpstream
) -> None:
    for _ in range(2):
        assert (await client.register(running(upstream), events=[])).created
    with pytest.raises(QuotaExceeded) as caught:
        await client.register(running(upstream), events=[])
    assert (caught.value.status, caught.value.code) == (429, "quota_exceeded")
    assert isinstance(caught.value, TooManyRequests)


async def test_upstream_webhook_is_part_of_the_registration(
    client: AsyncRelayClient, upstream: ScriptedUpstream
) -> None:
    task_id = running(upstream)
    assert (await client.register(task_id, events=[], upstream_webhook=True)).created
    assert not (await client.register(task_id, events=[], upstream_webhook=True)).created
    with pytest.raises(Conflict) as caught:
        await client.register(task_id, events=[])  # the default, False
    assert caught.value.field == "upstream_webhook"
