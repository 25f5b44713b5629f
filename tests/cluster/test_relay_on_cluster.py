"""The relay end to end on the session's Redis Cluster: `relay api` and `relay worker` as real
processes on its `redis+cluster://` URL, a scripted upstream and a receiver on loopback.

The cluster is emptied before each test, and its primaries are looked up each time: a
failover (here or in an earlier module) swaps a primary with its replica. The test that
kills a primary comes last and puts the killed node back as a replica.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from relay.devtools.redis_cluster import ClusterServers
from support.payloads import finished, new_id, new_ids, processing
from support.processes import clean_env
from support.servers import Receiver, ScriptedUpstream
from support.waiting import eventually
from tests.conftest import fast_env
from tests.e2e.test_lifecycle import verified  # signatures checked by standardwebhooks
from tests.reliability.test_crash import (
    FINAL_TYPES,
    KEYS,
    check_received,
    plan,
    register_all,
    wait_all_done,
)
from tests.reliability.test_crash import Cluster as Relay

Registrations = list[tuple[str, str, bool]]  # (task id, tenant, with progress events)


@pytest.fixture
async def relay(empty_cluster: ClusterServers, upstream: ScriptedUpstream) -> AsyncIterator[Relay]:
    """`relay api` (and the workers a test starts) on the cluster's URL, every seed in it."""
    processes = Relay(clean_env(**fast_env(empty_cluster.url, upstream.url)))
    try:
        yield processes
    finally:
        processes.close()


def client_of(relay: Relay) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=relay.base_url, timeout=30)


def auth(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[tenant]}"}


async def list_all(client: httpx.AsyncClient, tenant: str, limit: int) -> tuple[list[str], int]:
    """The tenant's task ids by following `next_cursor`, and how many pages that took."""
    found: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for pages in range(1, 1000):
        response = await client.get("/v1/tasks", params=params, headers=auth(tenant))
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["tasks"]) <= limit
        found += [task["task_id"] for task in body["tasks"]]
        if body["next_cursor"] is None:
            return found, pages
        params["cursor"] = body["next_cursor"]
    raise AssertionError("the cursor never ran out")


async def test_lifecycle_of_two_tenants_sharing_a_task(
    relay: Relay, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    shared = new_id()
    tasks = {"alpha": [*new_ids(5), shared], "beta": [*new_ids(2), shared]}
    for task_id in {task_id for owned in tasks.values() for task_id in owned}:
        upstream.script(task_id, processing(task_id, "40"), finished(task_id))
    await relay.start(workers=1)

    async with client_of(relay) as client:
        for tenant, owned in tasks.items():
            for task_id in owned:
                body = {
                    "task_id": task_id,
                    "webhook_url": f"{receiver.url}/{tenant}",
                    "metadata": {"tenant": tenant},
                }
                response = await client.post("/v1/tasks", json=body, headers=auth(tenant))
                assert response.status_code == 201, response.text

        wanted = {(task_id, tenant) for tenant, owned in tasks.items() for task_id in owned}
        await receiver.wait_for(len(wanted), timeout=30)
        events = verified(receiver)
        got = {(e["data"]["task_id"], e["data"]["metadata"]["tenant"]) for e in events}
        assert got == wanted, relay.logs()
        assert {e["type"] for e in events} == {"task.succeeded"}
        assert sorted(receiver.paths) == sorted(f"/{tenant}" for _, tenant in wanted)
        # One poll serves both tenants of the shared task.
        polls = {e["data"]["polls"] for e in events if e["data"]["task_id"] == shared}
        assert polls == {upstream.calls[shared]}

        for task_id, tenant in wanted:
            task = (await client.get(f"/v1/tasks/{task_id}", headers=auth(tenant))).json()
            assert (task["status"], task["progress"]) == ("succeeded", 100), task
            assert task["metadata"] == {"tenant": tenant}

        async def every_delivery_delivered() -> bool:
            for task_id, tenant in wanted:
                url = f"/v1/tasks/{task_id}/deliveries"
                listing = (await client.get(url, headers=auth(tenant))).json()["deliveries"]
                if [(d["type"], d["status"]) for d in listing] != [("task.succeeded", "delivered")]:
                    return False
            return True

        await eventually(every_delivery_delivered, 10, "every delivery listed as delivered")

        for tenant, owned in tasks.items():
            listed, pages = await list_all(client, tenant, limit=4)
            assert sorted(listed) == sorted(owned), tenant  # each once, over pages of 4 at most
            assert pages > 1 or len(owned) <= 4

        assert (
            await client.delete(f"/v1/tasks/{shared}", headers=auth("alpha"))
        ).status_code == 204
        assert (await client.get(f"/v1/tasks/{shared}", headers=auth("alpha"))).status_code == 404
        assert (
            await client.delete(f"/v1/tasks/{shared}", headers=auth("alpha"))
        ).status_code == 404
        listed, _ = await list_all(client, "alpha", limit=4)
        assert sorted(listed) == sorted(tasks["alpha"][:-1])
        # The other tenant of the shared task keeps it.
        kept = await client.get(f"/v1/tasks/{shared}", headers=auth("beta"))
        assert kept.status_code == 200 and kept.json()["status"] == "succeeded"


async def test_registered_tasks_spread_over_every_primary(
    relay: Relay, empty_cluster: ClusterServers
) -> None:
    task_ids = new_ids(200)
    await relay.start(workers=0)  # the API alone writes every registration
    async with client_of(relay) as client:
        for start in range(0, len(task_ids), 20):
            replies = await asyncio.gather(
                *(
                    client.post(
                        "/v1/tasks", json={"task_id": task_id, "events": []}, headers=auth("alpha")
                    )
                    for task_id in task_ids[start : start + 20]
                )
            )
            assert [reply.status_code for reply in replies] == [201] * len(replies)
        listed, pages = await list_all(client, "alpha", limit=50)
    assert sorted(listed) == sorted(task_ids) and pages >= 4

    sizes: dict[int, int] = {}
    task_keys: dict[int, int] = {}
    for node in empty_cluster.owners():
        async with Redis(port=node.port) as primary:
            sizes[node.port] = await primary.dbsize()
            task_keys[node.port] = len(
                [key async for key in primary.scan_iter(match="relay:{s*}:task:*", count=1000)]
            )
    assert len(sizes) == 3 and all(sizes.values()), sizes
    assert all(task_keys.values()), task_keys
    assert sum(task_keys.values()) == len(task_ids), task_keys


async def test_a_worker_killed_under_load_loses_no_final_event(
    relay: Relay, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    rng = random.Random()
    receiver.delay = 0.3  # so that kills land in the middle of webhook attempts
    registrations, final_type = plan(upstream, 100, rng)
    await relay.start(workers=2)

    async with client_of(relay) as client:
        registering = asyncio.create_task(
            register_all(client, receiver.url + "/hook", registrations, 5, 0.5)
        )

        async def working() -> bool:
            return len(receiver.received) >= 10

        await eventually(working, 30, "the first webhooks arrived")
        victim = rng.choice(relay.workers)
        victim.sigkill()
        relay.workers.remove(victim)
        relay.dead.append(victim)
        await registering
        # The survivor alone takes over the dead one's claims; a new worker joins later.
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        await relay.add_worker().wait_output("worker started")

        await wait_all_done(client, receiver, registrations, final_type, relay, 60)
        stats = check_received(receiver, registrations, final_type)
    assert victim.process.returncode == -9
    assert all(proc.alive() for proc in relay.workers), relay.logs()
    print(f"after the kill: {stats}")


async def replicated(cluster: ClusterServers) -> None:
    """Until every replica has all its primary had when asked: replication is asynchronous,
    and what the replica lacks when its primary dies is gone."""
    for node in cluster.owners():
        async with Redis(port=node.port, decode_responses=True) as primary:
            target = (await primary.info("replication"))["master_repl_offset"]

            async def caught_up(primary: Redis = primary, target: int = target) -> bool:
                info = await primary.info("replication")
                replicas = [info[f"slave{i}"] for i in range(info["connected_slaves"])]
                return bool(replicas) and all(r["offset"] >= target for r in replicas)

            await eventually(caught_up, 10, f"the replica of {node.port} caught up", 0.02)


async def register_until_accepted(
    client: httpx.AsyncClient, url: str, registrations: Registrations
) -> None:
    """Registrations sent while a primary fails over: a 503 is asked again, and a 200 then
    says an earlier try got through."""
    for task_id, tenant, progress in registrations:
        body: dict[str, Any] = {
            "task_id": task_id,
            "webhook_url": url,
            "metadata": {"tenant": tenant},
        }
        if progress:
            body["events"] = ["task.progress", *sorted(FINAL_TYPES)]
        for _ in range(300):
            response = await client.post("/v1/tasks", json=body, headers=auth(tenant))
            if response.status_code in (200, 201):
                break
            assert response.status_code == 503, response.text
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"{tenant}'s registration of {task_id} never got through")


def finals_of(events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (e["data"]["task_id"], e["data"]["metadata"]["tenant"], e["type"])
        for e in events
        if e["type"] in FINAL_TYPES
    }


async def test_a_primary_killed_under_load_is_replaced_and_loses_no_final_event(
    relay: Relay, empty_cluster: ClusterServers, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    rng = random.Random()
    receiver.delay = 0.1
    registrations, final_type = plan(upstream, 100, rng)
    before, after = (
        registrations[: len(registrations) // 2],
        registrations[len(registrations) // 2 :],
    )
    await relay.start(workers=2)
    url = receiver.url + "/hook"

    killed: int | None = None
    try:
        async with client_of(relay) as client:
            await register_all(client, url, before, 3, 0.3)
            # Registrations the API acknowledged must outlive the primary: made sure here,
            # as Redis itself does not. Writes after this point may be lost with the node;
            # what the relay lost with them it must do again.
            await replicated(empty_cluster)

            async def working() -> bool:
                return len(receiver.received) >= 10

            await eventually(working, 30, "the first webhooks arrived")
            # In a thread: the upstream and the receiver keep answering meanwhile.
            killed = await asyncio.to_thread(empty_cluster.kill_primary, rng.randrange(3))
            at_kill = len(receiver.received)
            # Half the tasks are registered from now on: the load goes on through the failover.
            try:
                await register_until_accepted(client, url, after)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{relay.logs()}") from None
            await asyncio.to_thread(empty_cluster.wait_failover, 60)
            assert empty_cluster.ids[killed] not in {node.id for node in empty_cluster.owners()}

            await wait_all_done(client, receiver, registrations, final_type, relay, 90)
            expected = {
                (task_id, tenant, final_type[task_id]) for task_id, tenant, _ in registrations
            }
            assert finals_of(verified(receiver)) == expected
        assert all(proc.alive() for proc in [relay.api, *relay.workers]), relay.logs()
        webhook_ids = {r.headers["webhook-id"] for r in receiver.received}
        print(
            f"the primary at servers[{killed}] killed after {at_kill} webhooks; "
            f"{len(receiver.received)} received, {len(webhook_ids)} distinct"
        )
    finally:
        if killed is not None:
            # Back as a replica of the node that replaced it, for the tests after this one.
            # Not in a thread: a node dies with the thread that started it.
            empty_cluster.wait_failover(60)
            empty_cluster.restart(killed)
