"""The API's long-poll subscription on a cluster: on one node, hearing publishes from all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from relay.api.waiters import Waiters
from relay.devtools.redis_cluster import ClusterServers
from relay.store import keys
from relay.store.cluster_client import RelayCluster
from support.payloads import new_id
from support.waiting import eventually
from tests.cluster.conftest import key_of

# As APPLY does: a PUBLISH from a script (of a task's compact id), which runs on the node
# of its key's slot.
PUBLISH = "return redis.call('PUBLISH', ARGV[1], ARGV[2])"


class Heard:
    """Waiters subscribed on `client`, and the task ids their subscription delivered."""

    def __init__(self, client: RelayCluster) -> None:
        self.waiters = Waiters(client)
        self.ids: list[str] = []
        wake = self.waiters.wake

        def record(task_id: str) -> None:
            self.ids.append(task_id)
            wake(task_id)

        self.waiters.wake = record  # type: ignore[method-assign]

    async def hears(self, task_id: str) -> None:
        async def heard() -> bool:
            return task_id in self.ids

        await eventually(heard, 10, f"the subscription hears {task_id}")


@pytest.fixture
async def heard(relay_client: RelayCluster) -> AsyncIterator[Heard]:
    heard = Heard(relay_client)
    running = asyncio.create_task(heard.waiters.run())

    async def live() -> bool:
        return heard.waiters.live

    await eventually(live, 10, "subscribed")
    yield heard
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


async def _subscribed(cluster: ClusterServers) -> list[int]:
    """The ports of the nodes holding a subscription to the finals channel."""
    ports = []
    for server in cluster.servers:
        if server.process is None:
            continue
        async with Redis(port=server.port) as node:
            counts = await node.pubsub_numsub(keys.FINALS)  # of this node's own clients
        if counts[0][1]:
            ports.append(server.port)
    return ports


async def test_a_script_publishing_on_another_node_wakes_the_waiters(
    redis_cluster: ClusterServers, relay_client: RelayCluster, heard: Heard
) -> None:
    [listening] = await _subscribed(redis_cluster)
    elsewhere = next(node for node in redis_cluster.owners() if node.port != listening)
    key = key_of(relay_client, elsewhere.slots, "final:")
    from_script, announced = new_id(), new_id()
    await relay_client.eval(PUBLISH, 1, key, keys.FINALS, keys.compact_id(from_script))
    await heard.hears(from_script)
    await heard.waiters.announce(announced)  # the delete route's PUBLISH
    await heard.hears(announced)


async def test_a_broken_subscription_comes_back_on_another_node(
    redis_cluster: ClusterServers, relay_client: RelayCluster, heard: Heard
) -> None:
    [first] = await _subscribed(redis_cluster)
    async with Redis(port=first) as node:
        await node.client_kill_filter(_type="pubsub")

    async def moved() -> bool:
        return heard.waiters.live and (await _subscribed(redis_cluster)) not in ([], [first])

    await eventually(moved, 15, "subscribed again, on another node")
    [second] = await _subscribed(redis_cluster)
    owner = next(node for node in redis_cluster.owners() if node.port != second)
    again = new_id()
    key = key_of(relay_client, owner.slots)
    await relay_client.eval(PUBLISH, 1, key, keys.FINALS, keys.compact_id(again))
    await heard.hears(again)
