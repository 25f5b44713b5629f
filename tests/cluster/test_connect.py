"""The relay's cluster client on a real cluster: discovery from one seed, failover, resharding.

Each test leaves the cluster as it found it: 3 primaries, a replica each, every
slot back with its owner (the roles may have swapped).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from relay.devtools.redis_cluster import ClusterServers, NodeLine
from relay.devtools.redis_server import free_port
from relay.store import redis as relay_redis
from relay.store.cluster_client import RelayCluster
from relay.store.redis import connect, ping
from support.waiting import eventually
from tests.cluster.conftest import key_of


async def test_one_seed_is_enough_to_find_every_primary(
    redis_cluster: ClusterServers, relay_client: RelayCluster
) -> None:
    assert await relay_client.ping()  # every primary answered
    found = sorted(node.port for node in relay_client.get_primaries())
    assert found == sorted(node.port for node in redis_cluster.owners())
    assert len(relay_client.nodes_manager.startup_nodes) >= 3  # it knows more than its seed


async def test_readiness_asks_every_primary(
    redis_cluster: ClusterServers, relay_client: RelayCluster
) -> None:
    async def pings() -> dict[int, int]:
        counts = {}
        for owner in redis_cluster.owners():
            async with Redis(port=owner.port) as node:
                stats = await node.info("commandstats")
            counts[owner.port] = stats.get("cmdstat_ping", {}).get("calls", 0)
        return counts

    before = await pings()
    assert await relay_client.ping()  # what Registry.ping, so /readyz, asks
    after = await pings()
    assert all(after[port] > before[port] for port in before), (before, after)


async def test_keys_go_to_the_primary_of_their_slot(
    redis_cluster: ClusterServers, relay_client: RelayCluster
) -> None:
    for owner in redis_cluster.owners():
        key = key_of(relay_client, owner.slots, "owned:")
        await relay_client.set(key, owner.id)
        async with Redis(port=owner.port, decode_responses=True) as node:
            assert await node.get(key) == owner.id


def test_the_start_check_pings_a_cluster_and_refuses_a_dead_one(seed_url: str) -> None:
    ping(seed_url)
    with pytest.raises(ConnectionError):  # a RedisError, which the CLI reports in one line
        ping(f"redis+cluster://127.0.0.1:{free_port()}")


async def _read(client: RelayCluster, key: str, piped: bool) -> str | None:
    if not piped:
        value: str | None = await client.get(key)
        return value
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.get(f"{key}:elsewhere")  # another slot: likely another node
        value, _ = await pipe.execute()
    return value


@pytest.mark.parametrize("piped", [False, True], ids=["command", "pipeline"])
async def test_a_read_across_a_failover_is_ridden_out_by_the_same_client(
    redis_cluster: ClusterServers, seed_url: str, monkeypatch: pytest.MonkeyPatch, piped: bool
) -> None:
    # The mechanism, not this machine's speed: the ride-out outlasts any failover here
    # (the test cluster's take about 2.5 s, within the relay's RIDE_OUT of 5 s).
    monkeypatch.setattr(relay_redis, "RIDE_OUT", 60.0)
    client = connect(seed_url)
    assert isinstance(client, RelayCluster)
    shard = 1
    victim = _owner_of(redis_cluster.owners(), redis_cluster.shards[shard][0])
    key = key_of(client, victim.slots, f"failover-{piped}:")
    await client.set(key, "before")
    await _until_replicated(redis_cluster, victim, key, "before")

    killed = redis_cluster.kill_primary(shard)
    try:
        # Sent while the replica is not promoted yet: the client waits it out.
        assert await _read(client, key, piped) == "before"
        await client.set(key, "after")
        redis_cluster.wait_failover()  # every node's view, not only the client's
        promoted = _owner_of(redis_cluster.owners(), redis_cluster.shards[shard][0])
        assert promoted.id != victim.id
        async with Redis(port=promoted.port, decode_responses=True) as node:
            assert await node.get(key) == "after"
    finally:
        await client.aclose()
        redis_cluster.wait_failover()  # restarted before, it would be an empty primary
        redis_cluster.restart(killed)  # in this thread: a node dies with the one that started it


async def test_a_moved_slot_is_followed_and_a_migrating_one_asked(
    redis_cluster: ClusterServers, relay_client: RelayCluster
) -> None:
    source, target = redis_cluster.owners()[:2]
    tag = key_of(relay_client, source.slots, "moving")
    slot = relay_client.keyslot(tag)
    moved, created = f"{{{tag}}}:there-before", f"{{{tag}}}:made-while-moving"
    await relay_client.set(moved, "v")  # the client's map now sends this slot to `source`

    try:
        async with Redis(port=source.port) as old, Redis(port=target.port) as new:
            await new.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id)
            await old.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id)
            # A key the source does not have: it answers ASK, the client follows to `target`.
            await relay_client.set(created, "n")
            assert await new.execute_command("ASKING") and await new.exists(created) == 1
            await _migrate_keys(old, slot, target.port)
            await _assign(redis_cluster, slot, target)
        # The client's map still says `source`, which answers MOVED: followed.
        assert await relay_client.mget(moved, created) == ["v", "n"]
        assert relay_client.nodes_manager.slots_cache[slot][0].port == target.port
    finally:
        await _move_back(redis_cluster, slot, target, source)


@pytest.fixture(scope="module")
def lone_node() -> Iterator[ClusterServers]:
    """A cluster of one primary: killing it takes the whole cluster down."""
    with ClusterServers(primaries=1, replicas=0) as cluster:
        yield cluster


async def test_after_a_whole_cluster_outage_the_client_reconnects_by_itself(
    lone_node: ClusterServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_redis, "RIDE_OUT", 0.5)
    client = connect(lone_node.url)
    try:
        await client.set("k", "v")
        killed = lone_node.kill_primary(0)
        # More failures than nodes it knows: redis-py alone forgets each failed node
        # and, knowing none, never connects again (redis-py #2555, #3693).
        for _ in range(3):
            with pytest.raises(ConnectionError):  # a RedisError, not RedisClusterException
                await client.get("k")
        lone_node.restart(killed)
        assert await client.ping()
        assert await client.set("k", "again")
    finally:
        await client.aclose()


def _owner_of(owners: tuple[NodeLine, ...], slot: int) -> NodeLine:
    return next(node for node in owners if any(a <= slot <= b for a, b in node.slots))


async def _until_replicated(
    cluster: ClusterServers, primary: NodeLine, key: str, value: str
) -> None:
    """Until a replica of `primary` holds `key` at `value`: the promoted one must have it."""
    replicas: list[NodeLine] = []

    async def has_replica() -> bool:
        # A node restarted by an earlier test rejoins as a replica: every node hears of
        # it by gossip, a moment after the cluster says ok.
        replicas[:] = [n for n in cluster.views()[0].nodes if n.master == primary.id]
        return bool(replicas)

    await eventually(has_replica, 10, f"a replica of {primary.port} in the cluster's view")
    replica = replicas[0]
    async with Redis(port=replica.port, decode_responses=True) as node:
        await node.execute_command("READONLY")  # reads of its primary's slots

        async def holds() -> bool:
            return bool(await node.get(key) == value)

        await eventually(holds, 10, f"{key} replicated to {replica.port}")


async def _migrate_keys(source: Redis, slot: int, port: int) -> None:
    while keys := await source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        await source.execute_command("MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", *keys)


async def _assign(cluster: ClusterServers, slot: int, owner: NodeLine) -> None:
    """`slot` to `owner`, told to every primary (the new owner first), then until all agree."""
    primaries = sorted(cluster.owners(), key=lambda node: node.id != owner.id)
    for primary in primaries:
        async with Redis(port=primary.port) as node:
            await node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner.id)
    cluster.wait_failover()  # no node killed: until every node agrees on the slots


async def _move_back(cluster: ClusterServers, slot: int, holder: NodeLine, owner: NodeLine) -> None:
    async with Redis(port=owner.port) as back, Redis(port=holder.port) as away:
        # Whatever step the test reached, from the start: no slot half-moved.
        for node in (back, away):
            await node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        if await away.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot):
            await back.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", holder.id)
            await away.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", owner.id)
            await _migrate_keys(away, slot, owner.port)
    await _assign(cluster, slot, owner)
