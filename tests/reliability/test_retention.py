"""Nothing lives forever: once `RELAY_RETENTION` has passed, no key of a task is left.

The real API and worker on the session's Redis fill it with tasks in every
ending (succeeded, failed, timed out, deleted), with progress events, two
tenants on one task and one that registers a task already final, receivers
that answer 410 (while other deliveries wait behind, and to a final event),
fail, fail then take a redelivery, or are dead long enough to be held. Once
retention has passed and the worker's sweep has run, the only keys left are
the relay's fixed ones (every constant of `relay.store.keys`) and the per-receiver
breaker state, which expires `STATE_TTL` after its receiver's last attempt.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from relay.devtools.redis_server import free_port
from relay.store import keys, stats
from relay.store.breaker import STATE_TTL
from support.payloads import answer, finished
from support.servers import Canned, Receiver, ScriptedUpstream
from support.waiting import eventually
from tests.conftest import Api
from tests.reliability import test_delivery_semantics as semantics
from workers.worker import WorkerContext, sweep

RETENTION = 2.5
DEADLINE = 3.0
ENV = {"RELAY_RETENTION": str(RETENTION), "RELAY_TASK_DEADLINE": str(DEADLINE)}
ALL = semantics.ALL_EVENTS
BETA = "key-beta-0123456789"

receivers = semantics.receivers  # receivers started by `new_receiver`, all stopped at the end
new_id = semantics.new_id

# The relay's fixed keys: one each (or one per shard), whatever the number of tasks.
FIXED = {
    value
    for name, value in vars(keys).items()
    if name.isupper() and isinstance(value, str) and value.startswith(keys.PREFIX)
} | {
    key for shard in range(keys.SHARDS) for key in [*keys.shard_queues(shard), keys.due_turn(shard)]
}


def bounded_receiver_state(key: str) -> bool:
    """Per receiver (not per task): each expires STATE_TTL after its receiver's last write."""
    any_receiver = keys.receiver("").removesuffix("}")  # every receiver key starts so
    any_tenant = keys.tenant_prefix("").removesuffix("}:")
    held = keys.held_for_tenant("").removeprefix(keys.tenant_prefix(""))
    return key.startswith(any_receiver) or (key.startswith(any_tenant) and key.endswith(held))


def progressing(task_id: str, end: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Answers through 10, 40, 70 percent, then `end` (None: running for ever)."""
    steps = [answer(task_id, "processing", percentage=str(p)) for p in (10, 40, 70)]
    return [*steps, end] if end is not None else steps


async def leftovers(redis: Redis) -> dict[str, tuple[str, int]]:
    """Every key that is neither fixed nor bounded receiver state: its type and TTL."""
    found = {}
    async for key in redis.scan_iter("*"):
        if key in FIXED:
            continue
        ttl = await redis.ttl(key)
        if bounded_receiver_state(key) and 0 < ttl <= STATE_TTL:
            continue
        found[key] = (await redis.type(key), ttl)
    return found


async def delivery_ids(api: Api, task_id: str, status: str) -> list[str]:
    return [d["id"] for d in await semantics.listing(api, task_id) if d["status"] == status]


@pytest.mark.parametrize("env_overrides", [ENV])
async def test_once_retention_has_passed_no_key_of_a_task_is_left(
    api: Api,
    worker: WorkerContext,
    upstream: ScriptedUpstream,
    redis: Redis,
    receivers: list[Receiver],
) -> None:
    good = await semantics.new_receiver(receivers)
    slow_gone = await semantics.new_receiver(
        receivers, lambda r: Canned(b"", status=410, delay=0.6)
    )
    failing = await semantics.new_receiver(receivers, lambda r: Canned(b"", status=500))
    healed: list[bool] = []
    flaky = await semantics.new_receiver(
        receivers, lambda r: Canned(b"", status=204 if healed else 500)
    )
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: refused, then held

    names = ["ok", "failed", "timeout", "deleted", "quiet", "gone_queue", "gone_final"]
    names += ["failed_dlv", "redelivered", "late", *[f"held{i}" for i in range(4)]]
    t = {name: new_id() for name in names}
    upstream.script(t["ok"], *progressing(t["ok"], finished(t["ok"])))
    upstream.script(t["failed"], answer(t["failed"], "failed", error="boom"))
    upstream.script(t["timeout"], *progressing(t["timeout"], None))
    upstream.script(t["deleted"], *progressing(t["deleted"], None))
    upstream.script(t["quiet"], *progressing(t["quiet"], None))
    # Its progress events queue behind the first one's slow 410, then its final one.
    upstream.script(t["gone_queue"], *progressing(t["gone_queue"], finished(t["gone_queue"])))
    for name in ["gone_final", "failed_dlv", "redelivered", "late", *names[-4:]]:
        upstream.script(t[name], finished(t[name]))

    registrations: list[tuple[str, str, dict[str, Any]]] = [
        ("ok", "", {"webhook_url": good.url, "events": ALL}),
        ("ok", BETA, {"webhook_url": good.url, "events": ALL}),
        ("failed", "", {"webhook_url": good.url}),
        ("timeout", "", {"webhook_url": good.url, "events": ALL}),
        ("deleted", "", {"webhook_url": good.url, "events": ALL}),
        ("deleted", BETA, {"events": []}),
        ("quiet", "", {"events": []}),
        ("gone_queue", "", {"webhook_url": slow_gone.url, "events": ALL}),
        ("gone_final", "", {"webhook_url": slow_gone.url}),
        ("failed_dlv", "", {"webhook_url": failing.url}),
        ("redelivered", "", {"webhook_url": flaky.url}),
        ("late", "", {"webhook_url": good.url}),
        *[(f"held{i}", "", {"webhook_url": dead}) for i in range(4)],
    ]
    for name, key, fields in registrations:
        reply = await api.register(t[name], key or "key-alpha-0123456789", **fields)
        assert reply.status_code == 201, reply.text

    # Deleted once a progress event went out; the other one before any poll mattered.
    await good.wait_for(1, task_id=t["deleted"])
    for name in ("deleted", "quiet"):
        assert (await api.client.delete(f"/v1/tasks/{t[name]}")).status_code == 204

    # A second tenant registers a task already final: its final event goes at once.
    await api.wait_status(t["late"], "succeeded")
    late = await api.register(t["late"], BETA, webhook_url=good.url)
    assert late.status_code == 201, late.text

    # A failed delivery redelivered once its receiver is back; a delivered one again.
    await semantics.wait_listing(api, t["redelivered"], ["failed"])
    healed.append(True)
    (failed_id,) = await delivery_ids(api, t["redelivered"], "failed")
    redelivered = await api.client.post(f"/v1/deliveries/{failed_id}/redeliver")
    assert redelivered.status_code == 202, redelivered.text
    await semantics.wait_listing(api, t["redelivered"], ["delivered"])

    async def both_finals_arrived() -> bool:
        types = [e["type"] for e in good.events(t["ok"])]
        return types.count("task.succeeded") == 2

    await eventually(both_finals_arrived, 10, "both tenants' final events arrived")
    assert (await api.client.post(f"/v1/tasks/{t['ok']}/redeliver")).status_code == 202

    await semantics.wait_listing(api, t["failed_dlv"], ["failed"])
    await semantics.wait_listing(api, t["gone_final"], ["gone"])
    gone_queue = await semantics.listing(api, t["gone_queue"])
    assert [d["status"] for d in gone_queue].count("gone") >= 2, gone_queue

    # The dead receiver is held while its deliveries wait.
    async def held() -> bool:
        reply = await api.client.get("/v1/receivers")
        return any(r["origin"] in dead for r in reply.json()["receivers"])

    await eventually(held, 10, "the dead receiver is held")

    for name, status in [("failed", "failed"), ("timeout", "timed_out")]:
        await api.wait_status(t[name], status, timeout=DEADLINE + 10)

    async def all_ended() -> bool:
        snapshot = await stats.snapshot(redis, time.time())
        return snapshot.tracked + snapshot.deliveries == 0

    await eventually(all_ended, 20, "no poll and no delivery left to make")
    await asyncio.sleep(RETENTION)

    found: dict[str, tuple[str, int]] = {}

    async def nothing_left() -> bool:
        await sweep(worker)  # the worker's cron job, run now rather than at :07 or :37
        found.clear()
        found.update(await leftovers(redis))
        return not found

    try:
        await eventually(nothing_left, DEADLINE + RETENTION + 10, "no key left", 0.5)
    except AssertionError as exc:
        listing = "\n".join(f"  {k} {kind} ttl={ttl}" for k, (kind, ttl) in sorted(found.items()))
        raise AssertionError(f"{exc}; left (type, ttl):\n{listing}") from None
