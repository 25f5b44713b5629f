"""What a receiver's answers do to deliveries: 410, 429 + Retry-After, timeouts,
redirects, large bodies; and which progress events are sent at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from support.payloads import answer, finished, new_id
from support.servers import Canned, Received, Receiver, ScriptedUpstream
from support.waiting import eventually
from tests.conftest import WEBHOOK_SECRET, Api

pytestmark = pytest.mark.usefixtures("worker")

FINAL = {"task.succeeded", "task.failed", "task.timed_out"}
ALL_EVENTS = ["task.progress", *sorted(FINAL)]
BETA = {"authorization": "Bearer key-beta-0123456789"}


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    """Receivers started by `new_receiver`; all are stopped at the end."""
    started: list[Receiver] = []
    yield started
    for server in started:
        await server.stop()


async def new_receiver(receivers: list[Receiver], respond: Any = None) -> Receiver:
    server = Receiver(respond)
    await server.start()
    receivers.append(server)
    return server


async def listing(api: Api, task_id: str, headers: dict[str, str] | None = None) -> Any:
    reply = await api.client.get(f"/v1/tasks/{task_id}/deliveries", headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()["deliveries"]


async def wait_listing(
    api: Api, task_id: str, statuses: list[str], timeout: float = 10
) -> list[dict[str, Any]]:
    """Wait until the deliveries listing shows exactly these statuses, in order."""
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        found[:] = await listing(api, task_id)
        return [d["status"] for d in found] == statuses

    try:
        await eventually(check, timeout, f"deliveries of {task_id} are {statuses}", 0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; listing: {found}") from None
    return found


def kinds(server: Receiver) -> list[tuple[str, int | None]]:
    hook = Webhook(WEBHOOK_SECRET)
    events = [hook.verify(r.body, r.headers) for r in server.received]
    return [(e["type"], e["data"]["progress"]) for e in events]


async def test_410_gone_ends_that_registrations_webhooks_only(
    api: Api, upstream: ScriptedUpstream, receivers: list[Receiver]
) -> None:
    gone = await new_receiver(receivers, lambda r: Canned(b"", status=410))
    fine = await new_receiver(receivers)
    task_id = new_id()
    upstream.script(
        task_id,
        *[answer(task_id, "processing", percentage="10")] * 3,
        *[answer(task_id, "processing", percentage="40")] * 3,
        *[answer(task_id, "processing", percentage="70")] * 3,
        finished(task_id),
    )
    assert (await api.register(task_id, webhook_url=gone.url, events=ALL_EVENTS)).status_code == 201
    assert (
        await api.register(
            task_id, key="key-beta-0123456789", webhook_url=fine.url, events=ALL_EVENTS
        )
    ).status_code == 201

    async def beta_final() -> bool:
        return any(t == "task.succeeded" for t, _ in kinds(fine))

    await eventually(beta_final, 10, "beta got its final event")
    await asyncio.sleep(0.3)
    assert len(gone.received) == 1, f"webhooks followed a 410: {kinds(gone)}"
    assert kinds(gone)[0][0] == "task.progress"

    alpha = await listing(api, task_id)
    assert alpha[0]["status"] == "gone", alpha
    assert [a["status_code"] for a in alpha[0]["attempts"]] == [410]
    for later in alpha[1:]:
        assert later["status"] == "gone" and later["attempts"] == [], alpha

    beta = await listing(api, task_id, BETA)
    assert all(d["status"] == "delivered" for d in beta), beta
    beta_kinds = kinds(fine)
    assert ("task.progress", 70) in beta_kinds, beta_kinds
    assert beta_kinds[-1] == ("task.succeeded", 100), beta_kinds


async def test_429_with_retry_after_is_retried_after_that_delay(
    api: Api, upstream: ScriptedUpstream, receivers: list[Receiver]
) -> None:
    server = await new_receiver(receivers)
    server.answers = [Canned(b"slow down", status=429, headers={"Retry-After": "1"})]
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    await api.register(task_id, webhook_url=server.url)
    await server.wait_for(2, timeout=10)
    gap = server.arrivals[1] - server.arrivals[0]
    assert gap >= 0.9, f"retried {gap:.3f} s after a 429 with Retry-After: 1"
    assert gap < 3.0, f"retried only {gap:.3f} s later"
    assert len({r.headers["webhook-id"] for r in server.received}) == 1
    (delivery,) = await wait_listing(api, task_id, ["delivered"])
    assert [a["status_code"] for a in delivery["attempts"]] == [429, 204]


@pytest.mark.parametrize("env_overrides", [{"RELAY_DELIVERY_TIMEOUT": "0.3"}])
async def test_a_receiver_slower_than_the_timeout_is_retried(
    api: Api, upstream: ScriptedUpstream, receivers: list[Receiver]
) -> None:
    server = await new_receiver(receivers)
    server.answers = [Canned(b"", status=204, delay=1.0)]
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    await api.register(task_id, webhook_url=server.url)
    (delivery,) = await wait_listing(api, task_id, ["delivered"])
    first, second = delivery["attempts"]
    assert first["status_code"] is None
    assert first["error"] and first["error"].startswith("timeout"), first
    assert first["duration_ms"] < 900, first
    assert second["status_code"] == 204 and second["error"] is None
    assert len(server.received) == 2
    assert server.received[0].body == server.received[1].body


async def test_redirects_are_not_followed(
    api: Api, upstream: ScriptedUpstream, receivers: list[Receiver]
) -> None:
    elsewhere = await new_receiver(receivers)
    server = await new_receiver(receivers)
    server.answers = [Canned(b"", status=302, headers={"Location": elsewhere.url + "/moved"})]
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    await api.register(task_id, webhook_url=server.url)
    (delivery,) = await wait_listing(api, task_id, ["delivered"])
    assert [a["status_code"] for a in delivery["attempts"]] == [302, 204]
    assert len(server.received) == 2
    await asyncio.sleep(0.2)
    assert elsewhere.received == [], "the redirect was followed"


async def test_large_receiver_answers_are_stored_truncated(
    api: Api, upstream: ScriptedUpstream, receivers: list[Receiver]
) -> None:
    server = await new_receiver(receivers)
    server.answers = [
        Canned(b"x" * 100_000, status=500, headers={"content-type": "text/plain"}),
        Canned(b"y" * 10_000, status=200, headers={"content-type": "text/plain"}),
    ]
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    await api.register(task_id, webhook_url=server.url)
    (delivery,) = await wait_listing(api, task_id, ["delivered"])
    first, second = delivery["attempts"]
    assert first["status_code"] == 500 and second["status_code"] == 200
    for attempt, char in ((first, "x"), (second, "y")):
        response = attempt.get("response")
        assert response, attempt
        assert len(response) <= 256, len(response)
        assert set(response) == {char}


async def test_the_same_percentage_again_makes_no_progress_event(
    api: Api, upstream: ScriptedUpstream, receivers: list[Receiver]
) -> None:
    server = await new_receiver(receivers)
    task_id = new_id()
    same_20 = [
        answer(task_id, "processing", percentage=p) for p in ("20", "20%", " 20 ", "20.4") * 2
    ]
    same_50 = [answer(task_id, "processing", percentage=50)] * 8
    upstream.script(task_id, *same_20, *same_50, finished(task_id))
    await api.register(task_id, webhook_url=server.url, events=ALL_EVENTS)

    async def final_arrived() -> bool:
        return any(t == "task.succeeded" for t, _ in kinds(server))

    await eventually(final_arrived, 15, "the final event arrived")
    await asyncio.sleep(0.2)
    assert upstream.calls[task_id] >= 17
    assert kinds(server) == [
        ("task.progress", 20),
        ("task.progress", 50),
        ("task.succeeded", 100),
    ]


@pytest.mark.parametrize(
    "env_overrides", [{"RELAY_DELIVERY_RETRY_SCHEDULE": ",".join(["0.3"] * 12)}]
)
async def test_a_progress_delivery_pending_at_the_final_event_is_dropped(
    api: Api, upstream: ScriptedUpstream, receivers: list[Receiver]
) -> None:
    final_seen: list[float] = []

    def respond(received: Received) -> Canned:
        if received.json["type"] in FINAL:
            final_seen.append(1)
        if final_seen:
            return Canned(b"", status=204)  # from now on a stale progress would get through
        return Canned(b"not now", status=500)

    server = await new_receiver(receivers, respond)
    task_id = new_id()
    upstream.script(
        task_id,
        *[answer(task_id, "processing", percentage="30")] * 4,
        *[answer(task_id, "processing", percentage="60")] * 4,
        finished(task_id),
    )
    await api.register(task_id, webhook_url=server.url, events=ALL_EVENTS)

    async def final_arrived() -> bool:
        return bool(final_seen)

    await eventually(final_arrived, 15, "the final event arrived")
    await asyncio.sleep(1.0)  # several retry periods: a stale progress would come now

    seen = kinds(server)
    ids = [r.headers["webhook-id"] for r in server.received]
    first_final = next(i for i, (t, _) in enumerate(seen) if t in FINAL)
    assert seen[first_final] == ("task.succeeded", 100)
    assert all(wid == ids[first_final] for wid in ids[first_final:]), (
        f"something arrived after the final event: {seen}"
    )
    assert sum(t == "task.progress" for t, _ in seen) >= 2, (
        f"the progress delivery was not being retried when the task ended: {seen}"
    )
    shown = [(d["type"], d["status"]) for d in await listing(api, task_id)]
    assert [d for d in shown if d[1] in {"pending", "delivered"}] == [
        ("task.succeeded", "delivered")
    ], shown
