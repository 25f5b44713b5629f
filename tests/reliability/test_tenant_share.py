"""One tenant with many stuck receivers cannot take every delivery slot.

The per-receiver bound holds a single receiver; here tenant alpha's deliveries
name 300 distinct receivers (one tarpit listening on 300 loopback ports: each
port is a receiver of its own), enough to fill a worker's 200 slots two
attempts each. Its share of the slots (`relay.delivery.shares`) leaves room
for beta. First the breaker's scripts with the clock in the test's hands, then
a real worker, a real API and real loopback receivers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from relay.delivery.shares import share
from relay.store import keys
from relay.store.breaker import HOLD_AFTER, HOLD_START, PARK, Candidate, Receivers, Report
from support.servers import Receiver, ScriptedUpstream
from support.waiting import eventually
from tests.conftest import WEBHOOK_SECRET, Api
from tests.reliability.test_breaker_scripts import claimed as claimed_at_one
from tests.reliability.test_breaker_scripts import delivery, due_at
from tests.reliability.test_receivers_isolated import BETA_KEY, register_finished
from workers.worker import WorkerContext

T0 = 1_800_000_000.0
SLOTS = 200  # the worker's RELAY_DELIVERY_CONCURRENCY (the default)
RECEIVERS = 300


def share_key(tenant: str) -> str:
    return keys.share_parked(tenant)


async def claimed(
    redis: Redis, origins: list[str], now: float, *, tenant: str = "alpha", first: int = 0
) -> list[Candidate]:
    """Deliveries as a claim leaves them (due at their lease's end), one per origin."""
    made = await claimed_at_one(redis, len(origins), now, first=first)
    return [
        dataclasses.replace(c, origin=o, tenant=tenant) for c, o in zip(made, origins, strict=True)
    ]


def origins(count: int) -> list[str]:
    return [f"https://r{n}.example:443" for n in range(count)]


async def test_past_its_room_a_tenant_parks_until_its_attempts_end(redis: Redis) -> None:
    breaker = Receivers(redis)
    alpha = await claimed(redis, origins(4), T0)
    beta = await claimed(redis, origins(2), T0, tenant="beta", first=10)
    answers = await breaker.admit(alpha + beta, T0, span=60, room={"alpha": 1, "beta": 5})
    # Four receivers with room each: only alpha's share stops three of its four.
    assert answers == ["go", "share", "share", "share", "go", "go"]
    parked = await redis.zrange(share_key("alpha"), 0, -1)
    assert parked == [delivery(1), delivery(2), delivery(3)]  # oldest first
    assert await redis.pttl(share_key("alpha")) > 0
    for c in alpha[1:]:
        assert T0 + PARK <= await due_at(redis, c.delivery_id) < T0 + 2 * PARK
        # Waiting for its tenant, not for its receiver: no receiver's release sends it.
        assert await redis.zscore(keys.receiver(c.origin) + ":q", c.delivery_id) is None
    assert not await redis.exists(share_key("beta"))

    # A tenant the caller names no room for is not bounded.
    (free,) = await claimed(redis, ["https://other.example:443"], T0, tenant="gamma", first=20)
    assert await breaker.admit([free], T0, span=60, room={"alpha": 0}) == ["go"]

    # Alpha's attempt ends: the caller releases what alpha's share allows now, oldest first.
    recorded = await breaker.record([Report(alpha[0], "up")], T0 + 1, release={"alpha": 2})
    assert (recorded.released, recorded.drained) == (2, ())
    assert await due_at(redis, delivery(1)) == T0 + 1
    assert await due_at(redis, delivery(2)) == T0 + 1
    assert await redis.zrange(share_key("alpha"), 0, -1) == [delivery(3)]
    # Released and claimed again, it goes; its entry is gone with it.
    (again,) = await claimed(redis, [alpha[1].origin], T0 + 1, first=1)
    assert await breaker.admit([again], T0 + 1, span=60, room={"alpha": 1}) == ["go"]
    recorded = await breaker.record([], T0 + 2, release={"alpha": 5})
    assert (recorded.released, recorded.drained) == (1, ("alpha",))
    assert not await redis.exists(share_key("alpha"))


async def test_a_probe_past_its_tenants_room_waits_without_taking_the_lease(
    redis: Redis,
) -> None:
    breaker = Receivers(redis)
    (origin,) = origins(1)
    for n in range(HOLD_AFTER):
        (c,) = await claimed(redis, [origin], T0, first=n)
        assert await breaker.admit([c], T0, span=600) == ["go"]
        await breaker.record([Report(c, "down")], T0)
    now = T0 + HOLD_START
    (first,) = await claimed(redis, [origin], now, first=10)
    assert await breaker.admit([first], now, span=600, room={"alpha": 0}) == ["share"]
    # The probe's lease is still free: the next delivery with room probes.
    (second,) = await claimed(redis, [origin], now, first=11)
    assert await breaker.admit([second], now, span=600, room={"alpha": 1}) == ["probe"]


class ManyPorts:
    """One tarpit on many loopback ports: accepts connections, never answers."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.open = 0
        self.most_open = 0
        self.ended = 0  # connections the relay closed: attempts that ended
        self._writers: set[asyncio.StreamWriter] = set()
        self._servers: list[asyncio.Server] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self._writers.add(writer)
        try:
            while await reader.read(65536):
                pass
            self.ended += 1
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()

    async def start(self, count: int) -> None:
        for _ in range(count):
            server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.ports.append(server.sockets[0].getsockname()[1])
            self._servers.append(server)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for server in self._servers:
            await server.wait_closed()


@pytest.fixture
async def tarpit(worker: WorkerContext) -> AsyncIterator[ManyPorts]:
    # Stopped before the worker (it depends on it): the worker's attempts then end at
    # once as it stops, not at their timeout.
    server = ManyPorts()
    await server.start(RECEIVERS)
    yield server
    await server.stop()


async def deferred_for_share(api: Api) -> float:
    line = 'relay_receiver_deferred_total{reason="share"} '
    text = (await api.client.get("/metrics", headers={"authorization": ""})).text
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line))


async def beta_arrives_beside(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, tarpit: ManyPorts
) -> None:
    """Alpha fills its share with attempts to the tarpit's ports; then every one of beta's
    final events arrives, signed."""
    alone = share(SLOTS, 1)
    await asyncio.gather(
        *(register_finished(api, upstream, f"http://127.0.0.1:{p}/hook", 1) for p in tarpit.ports)
    )
    await eventually(open_at(tarpit, alone), 30, f"alpha holds {alone} attempts to the tarpit")
    beta = await register_finished(api, upstream, receiver.url + "/beta", 20, key=BETA_KEY)
    await receiver.wait_for(len(beta), timeout=20)
    assert sorted(e["data"]["task_id"] for e in receiver.events()) == sorted(beta)
    verifier = Webhook(WEBHOOK_SECRET)
    for hook in receiver.received:
        verifier.verify(hook.body, hook.headers)


# Alpha's attempts hang for the whole test, or time out and come back at once.
STUCK = {"RELAY_DELIVERY_TIMEOUT": "60", "RELAY_DELIVERY_RETRY_SCHEDULE": "0.05,0.05,60"}
RETRYING = {"RELAY_DELIVERY_TIMEOUT": "1", "RELAY_DELIVERY_RETRY_SCHEDULE": "0.05,0.05,60"}


@pytest.mark.parametrize("env_overrides", [STUCK])
async def test_another_tenant_does_not_wait_for_a_stuck_tenants_attempts(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, tarpit: ManyPorts
) -> None:
    await beta_arrives_beside(api, upstream, receiver, tarpit)
    # Beta went out while every attempt alpha had started still hung: it never waited
    # for one of them to end, and alpha never held more than its share.
    assert tarpit.ended == 0
    assert tarpit.most_open == share(SLOTS, 1) < SLOTS

    async def counted() -> bool:  # workers add their counts to Redis about once a second
        return await deferred_for_share(api) >= RECEIVERS - share(SLOTS, 1)

    await eventually(counted, 5, "alpha's deliveries past its share were counted")


@pytest.mark.parametrize("env_overrides", [RETRYING])
async def test_a_stuck_tenant_retrying_at_a_short_timeout_stays_within_its_share(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, tarpit: ManyPorts
) -> None:
    await beta_arrives_beside(api, upstream, receiver, tarpit)

    async def retried() -> bool:
        return tarpit.ended >= RECEIVERS

    # Alpha's attempts time out and come back, and its parked ones go as they end.
    await eventually(retried, 30, "alpha's attempts ended and were retried")
    assert tarpit.most_open <= share(SLOTS, 1)


class Gated(Receiver):
    """Records each webhook at once, answers it only once `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def _hook(self, request: web.Request) -> web.Response:
        answer = await super()._hook(request)
        await self.gate.wait()
        return answer


@pytest.mark.parametrize("env_overrides", [STUCK])
async def test_a_share_grows_back_when_the_other_tenants_work_ends(
    api: Api, upstream: ScriptedUpstream, tarpit: ManyPorts
) -> None:
    async with Gated() as gated:
        await register_finished(api, upstream, gated.url + "/beta", 1, key=BETA_KEY)
        await gated.wait_for(1, timeout=20)  # beta's attempt is in flight, held there
        await asyncio.gather(
            *(register_finished(api, upstream, f"http://127.0.0.1:{p}/a", 1) for p in tarpit.ports)
        )
        two = share(SLOTS, 2)
        try:
            await eventually(open_at(tarpit, two), 30, f"alpha holds {two} attempts beside beta")
            await asyncio.sleep(0.5)  # time enough to take more, were it allowed to
            assert tarpit.most_open == two
        finally:
            gated.gate.set()
        # Beta's attempt ended: alpha's share grows back, though none of its own ended.
        alone = share(SLOTS, 1)
        await eventually(open_at(tarpit, alone), 10, "alpha holds its share alone")
        assert tarpit.ended == 0
        assert tarpit.most_open == alone


def open_at(tarpit: ManyPorts, count: int) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return tarpit.open >= count

    return reached
