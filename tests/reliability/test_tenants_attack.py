"""Two tenants on one relay, one of them hostile: the other's final events all arrive.

Real Redis, the real API and worker, real loopback receivers. The attacker
(beta) leaves hundreds of deliveries stuck at a tarpit (accepts, never answers)
and at a dead port (connection refused), registers the victim's task ids with
metadata deeper than the stores can read (422) and with a receiver that answers
410, and floods registrations past `RELAY_TENANT_MAX_TASKS` (429, nothing
stored). The victim (alpha) still gets every final event, signed: arrival is
asserted within a generous bound, never a timing.
"""

from __future__ import annotations

import time

import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from relay.devtools.redis_server import free_port
from relay.store import keys, stats
from relay.store.quota import Quota
from relay.store.record import TaskRecord
from support.payloads import finished, new_id, processing
from support.servers import Canned, Receiver, ScriptedUpstream, Tarpit
from support.waiting import eventually
from tests.conftest import WEBHOOK_SECRET, Api
from tests.reliability import test_delivery_semantics as semantics
from tests.reliability import test_receivers_isolated as isolated
from workers.worker import WorkerContext

QUOTA = 100
ENV = {
    "RELAY_TENANT_MAX_TASKS": str(QUOTA),
    # The stuck backlogs stay pending (held) for the whole test rather than fail.
    **isolated.LONG_SCHEDULE,
    # A quota's worth of running tasks, polled at a pace two shared cores can serve.
    "RELAY_POLL_MIN_INTERVAL": "0.5",
    "RELAY_POLL_MAX_INTERVAL": "1",
}
BACKLOG = 200  # deliveries stuck at each of the tarpit and the dead port
VICTIMS = 20
ATTACKER = "key-beta-0123456789"
ALL = semantics.ALL_EVENTS

tarpit = isolated.tarpit
receivers = semantics.receivers


def nested(depth: int) -> str:
    """A metadata object `depth` levels deep, as JSON (deeper than json.dumps recurses)."""
    return '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1)


async def register_backlog(api: Api, upstream: ScriptedUpstream, redis: Redis, url: str) -> None:
    """BACKLOG tasks of the attacker that end at once, each with a webhook to `url`,
    in batches the quota admits (a task stops counting once it is final)."""
    for _ in range(0, BACKLOG, QUOTA // 2):
        await isolated.register_finished(api, upstream, url, QUOTA // 2, key=ATTACKER)

        async def all_final() -> bool:
            return await Quota(redis).held("beta") == 0

        await eventually(all_final, 20, "the attacker's batch has ended")


async def deliveries_made(redis: Redis, tenant: str) -> int:
    """The tasks for which the tenant has deliveries, in every shard's records."""
    found = 0
    # Braces are literal in a pattern.
    async for key in redis.scan_iter(f"{keys.PREFIX}{{s*}}:task:*"):
        record = TaskRecord.parse(keys.full_id(key.rpartition(":")[2]), await redis.get(key))
        found += bool(record and record.delivery_ids(tenant))
    return found


async def deep_registration(api: Api, task_id: str, depth: int) -> httpx.Response:
    body = f'{{"task_id": "{task_id}", "metadata": {nested(depth)}}}'
    return await api.client.post(
        "/v1/tasks",
        content=body,
        headers={"authorization": f"Bearer {ATTACKER}", "content-type": "application/json"},
    )


@pytest.mark.parametrize("env_overrides", [ENV])
async def test_a_hostile_tenant_does_not_stop_another_tenants_final_events(
    api: Api,
    worker: WorkerContext,
    upstream: ScriptedUpstream,
    redis: Redis,
    tarpit: Tarpit,
    receiver: Receiver,
    receivers: list[Receiver],
) -> None:
    gone = await semantics.new_receiver(receivers, lambda r: Canned(b"", status=410))
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: connection refused

    # The attacker's stuck backlogs, made before the victim registers anything.
    await register_backlog(api, upstream, redis, tarpit.url + "/hook")
    await register_backlog(api, upstream, redis, dead)

    async def backlogs_made() -> bool:
        return await deliveries_made(redis, "beta") == 2 * BACKLOG

    await eventually(backlogs_made, 30, "the stuck backlogs' deliveries exist")

    # The victim's tasks run until the test lets them end.
    victims = [new_id() for _ in range(VICTIMS)]
    for task_id in victims:
        upstream.script(task_id, processing(task_id))
        reply = await api.register(task_id, webhook_url=receiver.url + "/victim")
        assert reply.status_code == 201, reply.text

    # The attacker joins some of them with a receiver answering 410 to every event...
    for task_id in victims[:5]:
        reply = await api.register(task_id, ATTACKER, webhook_url=gone.url, events=ALL)
        assert reply.status_code == 201, reply.text
    # ...and tries others with metadata too deep: refused, nothing stored for it.
    for task_id, depth in [(victims[5], 40), (victims[6], 1100)]:
        refused = await deep_registration(api, task_id, depth)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["field"] == "metadata"
        assert (await api.task(task_id, ATTACKER)).status_code == 404

    # A flood of registrations: the quota's worth are tracked, the rest refused.
    flood = [new_id() for _ in range(QUOTA + 20)]
    for task_id in flood:
        upstream.script(task_id, processing(task_id))
    replies = [await api.register(task_id, ATTACKER, webhook_url=dead) for task_id in flood]
    codes = [r.status_code for r in replies]
    refused_ids = [t for t, r in zip(flood, replies, strict=True) if r.status_code == 429]
    assert codes.count(201) == QUOTA - len(victims[:5]), codes
    assert len(refused_ids) == len(flood) - codes.count(201), codes
    assert {r.json()["error"]["code"] for r in replies if r.status_code == 429} == {
        "quota_exceeded"
    }
    for task_id in refused_ids[:3]:
        assert (await api.task(task_id, ATTACKER)).status_code == 404
        assert not await redis.exists(keys.task(task_id)), "a refused registration was stored"

    # The victim's tasks end: every final event reaches the victim, signed.
    for task_id in victims:
        upstream.script(task_id, finished(task_id))

    def finals() -> set[str]:
        return {e["data"]["task_id"] for e in receiver.events() if e["type"] == "task.succeeded"}

    async def all_arrived() -> bool:
        return finals() >= set(victims)

    try:
        await eventually(all_arrived, 60, "every final event of the victim arrived", 0.2)
    except AssertionError as exc:
        missing = sorted(set(victims) - finals())
        states = [(await api.task(t)).json() for t in missing[:3]]
        raise AssertionError(f"{exc}: {len(missing)} missing, e.g. {states}") from None
    verifier = Webhook(WEBHOOK_SECRET)
    for hook in receiver.received:
        verifier.verify(hook.body, hook.headers)
    assert {e["data"]["task_id"] for e in receiver.events()} == set(victims)

    # The attacker's 410 receiver was reached and ended only the attacker's webhooks.
    assert gone.received, "the attacker's 410 receiver was never reached"
    for task_id in victims[:5]:
        (mine,) = await semantics.listing(api, task_id)
        assert mine["status"] == "delivered", mine
    # The stuck backlogs are still stuck: the victim's events did not wait for them.
    assert tarpit.accepted < BACKLOG, tarpit.accepted
    queued = (await stats.snapshot(redis, time.time())).deliveries
    assert queued >= 2 * BACKLOG, "the backlogs went out"
