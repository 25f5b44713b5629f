"""One receiver cannot hold the relay: per-receiver in-flight bounds and the circuit breaker.

Real Redis, a real worker, real loopback receivers: a tarpit (accepts, never
answers), a dead port (connection refused), and a receiver switched between
down (503) and up by the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from relay.devtools.redis_server import free_port
from relay.store.breaker import HOLD_AFTER, WINDOW_MAX
from support.payloads import finished, new_id
from support.servers import Receiver, ScriptedUpstream, Tarpit
from support.waiting import eventually
from tests.conftest import WEBHOOK_SECRET, Api

pytestmark = pytest.mark.usefixtures("worker")

BETA_KEY = "key-beta-0123456789"
# A long last retry keeps failing deliveries pending (and held) for the whole test.
LONG_SCHEDULE = {"RELAY_DELIVERY_TIMEOUT": "2", "RELAY_DELIVERY_RETRY_SCHEDULE": "0.05,0.05,60"}


class Switched(Receiver):
    """Answers 503 while `down`, else 204; counts requests in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.failed = 0
        self.in_flight = 0
        self.max_in_flight_while_down = 0

    async def _hook(self, request: web.Request) -> web.Response:
        if self.down:
            self.in_flight += 1
            self.max_in_flight_while_down = max(self.max_in_flight_while_down, self.in_flight)
            try:
                await request.read()
                await asyncio.sleep(0.05)  # long enough for a second probe to overlap
                self.failed += 1
                return web.Response(status=503)
            finally:
                self.in_flight -= 1
        return await super()._hook(request)


@pytest.fixture
async def tarpit() -> AsyncIterator[Tarpit]:
    server = Tarpit()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def switched() -> AsyncIterator[Switched]:
    server = Switched()
    await server.start()
    yield server
    await server.stop()


async def register_finished(
    api: Api, upstream: ScriptedUpstream, url: str, count: int, key: str = "key-alpha-0123456789"
) -> list[str]:
    """`count` tasks the upstream answers as finished, each with a webhook to `url`."""
    ids = [new_id() for _ in range(count)]
    for task_id in ids:
        upstream.script(task_id, finished(task_id))
    for start in range(0, count, 50):
        replies = await asyncio.gather(
            *(api.register(t, key, webhook_url=url) for t in ids[start : start + 50])
        )
        assert all(r.status_code == 201 for r in replies), [r.text for r in replies]
    return ids


async def deliveries(api: Api, task_id: str, key: str = "key-alpha-0123456789") -> Any:
    reply = await api.client.get(
        f"/v1/tasks/{task_id}/deliveries", headers={"authorization": f"Bearer {key}"}
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["deliveries"]


async def held(api: Api, key: str = "key-alpha-0123456789") -> list[str]:
    reply = await api.client.get("/v1/receivers", headers={"authorization": f"Bearer {key}"})
    assert reply.status_code == 200, reply.text
    return [r["origin"] for r in reply.json()["receivers"]]


async def metric(api: Api, line_start: str) -> float:
    text = (await api.client.get("/metrics", headers={"authorization": ""})).text
    values = [float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line_start)]
    return sum(values)


async def metric_reaches(api: Api, line_start: str, least: float) -> None:
    """Workers add their counts to Redis about once a second."""

    async def reached() -> bool:
        return await metric(api, line_start) >= least

    await eventually(reached, 5, f"{line_start} >= {least}")


def origin(url: str) -> str:
    return url.rstrip("/") if url.count(":") == 2 else url + ":80"


@pytest.mark.parametrize("env_overrides", [LONG_SCHEDULE])
async def test_stuck_backlogs_do_not_stop_another_tenants_final_events(
    api: Api, upstream: ScriptedUpstream, tarpit: Tarpit, receiver: Receiver
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    stuck = await register_finished(api, upstream, tarpit.url + "/hook", 300)
    stuck += await register_finished(api, upstream, dead + "/hook", 300)
    # Both backlogs are made and due before the other tenant registers anything.
    await eventually(
        lambda: _all_have_a_delivery(api, [stuck[0], stuck[299], stuck[300], stuck[-1]]),
        20,
        "the stuck backlogs' deliveries exist",
    )

    beta = await register_finished(api, upstream, receiver.url + "/beta", 20, key=BETA_KEY)
    await receiver.wait_for(len(beta), timeout=20)
    arrived = sorted(e["data"]["task_id"] for e in receiver.events())
    assert arrived == sorted(beta)
    verifier = Webhook(WEBHOOK_SECRET)
    for hook in receiver.received:
        verifier.verify(hook.body, hook.headers)
    # The tarpit never had more than its in-flight bound of this worker's slots; while
    # beta's events went out it was held, with only its probes still reaching it.
    assert tarpit.accepted <= WINDOW_MAX, tarpit.accepted
    assert tarpit.accepted < 300
    await eventually(
        lambda: _held_are(api, {origin(tarpit.url), origin(dead)}),
        15,
        "both stuck receivers are held",
    )
    assert await held(api, BETA_KEY) == [], "beta sees no other tenant's receivers"
    assert await metric(api, "relay_held_receivers ") == 2
    await metric_reaches(api, 'relay_receiver_deferred_total{reason="held"}', 1)
    # Alpha's stuck deliveries wait, pending, without their schedules spent.
    for task_id in (stuck[0], stuck[-1]):
        (delivery,) = await deliveries(api, task_id)
        assert delivery["status"] == "pending"


@pytest.mark.parametrize("env_overrides", [LONG_SCHEDULE])
async def test_a_held_receiver_gets_only_probes_then_its_whole_backlog(
    api: Api, upstream: ScriptedUpstream, switched: Switched
) -> None:
    ids = await register_finished(api, upstream, switched.url + "/hook", 40)
    await eventually(
        lambda: _held_are(api, {origin(switched.url)}), 10, "the failing receiver is held"
    )
    at_hold = switched.failed
    # Failures in a row hold it: no more attempts than it took (the window saw to that).
    assert at_hold <= HOLD_AFTER + 1, at_hold
    await asyncio.sleep(4)  # holds of 1 s then 2 s: two probes at most
    probes = switched.failed - at_hold
    assert 1 <= probes <= 3, probes
    assert switched.max_in_flight_while_down <= HOLD_AFTER
    assert await metric(api, 'relay_receiver_probes_total{outcome="down"}') >= 1
    for task_id in ids[:5]:
        (delivery,) = await deliveries(api, task_id)
        assert delivery["status"] == "pending"

    switched.down = False
    await switched.wait_for(len(ids), timeout=30)
    assert sorted(e["data"]["task_id"] for e in switched.events()) == sorted(ids)
    # One webhook each, once: the backlog went out without duplicates.
    assert len(switched.received) == len(ids)
    await eventually(lambda: _held_are(api, set()), 5, "the receiver is no longer held")
    for task_id in ids:
        (delivery,) = await deliveries(api, task_id)
        assert delivery["status"] == "delivered"
        assert delivery["attempts"][-1]["status_code"] == 204
    await metric_reaches(api, 'relay_receiver_probes_total{outcome="up"}', 1)
    assert await metric(api, 'relay_receiver_probes_total{outcome="up"}') == 1
    assert await metric(api, "relay_held_receivers ") == 0


@pytest.mark.parametrize(
    "env_overrides",
    [{"RELAY_DELIVERY_TIMEOUT": "1", "RELAY_DELIVERY_RETRY_SCHEDULE": "0.05,0.05,0.5"}],
)
async def test_a_delivery_past_the_schedules_span_ends_failed_while_held(
    api: Api, upstream: ScriptedUpstream, switched: Switched
) -> None:
    ids = await register_finished(api, upstream, switched.url + "/hook", 20)

    async def all_failed() -> bool:
        found = [await deliveries(api, t) for t in ids]
        return all(d and d[0]["status"] == "failed" for d in found)

    await eventually(all_failed, 10, "every delivery ended failed")
    attempts = [len((await deliveries(api, t))[0]["attempts"]) for t in ids]
    # Held after a few failures: most deliveries ended without spending their schedule.
    assert sum(attempts) == switched.failed
    assert sum(attempts) < len(ids) * 4 // 2, attempts
    assert min(attempts) == 0
    await metric_reaches(api, "relay_deliveries_expired_total ", len(ids) // 2)
    failed = (await api.client.get("/v1/deliveries", params={"status": "failed"})).json()
    assert len(failed["deliveries"]) == len(ids)


@pytest.mark.parametrize("env_overrides", [{"RELAY_RECEIVER_HOLD_AFTER": "0"}])
async def test_hold_after_zero_never_holds(
    api: Api, upstream: ScriptedUpstream, switched: Switched
) -> None:
    ids = await register_finished(api, upstream, switched.url + "/hook", 6)

    async def all_failed() -> bool:
        found = [await deliveries(api, t) for t in ids]
        return all(d and d[0]["status"] == "failed" for d in found)

    await eventually(all_failed, 10, "every delivery ended failed")
    # fast_env's schedule, whole: the first attempt and three retries each.
    assert switched.failed == len(ids) * 4
    assert await held(api) == []


async def _all_have_a_delivery(api: Api, ids: list[str]) -> bool:
    return all([await deliveries(api, t) for t in ids])


async def _held_are(api: Api, origins: set[str]) -> bool:
    return set(await held(api)) == origins
