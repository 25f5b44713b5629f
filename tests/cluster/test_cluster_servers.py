"""The test session's Redis Cluster, and the rules it holds a key layout to.

Checked with redis-py, not with the devtool's own readiness test: what a client
and each node say. The failover test comes last, as it reshuffles the roles
(and puts a replica back when it is done).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from relay.devtools.redis_cluster import ClusterServers, NodeLine

TWO_KEYS = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('SET', KEYS[2], ARGV[1])"
# A key name taken from ARGV, as a script reading key names from stored data would.
UNDECLARED = "redis.call('SET', KEYS[1], 'x'); return redis.call('SET', ARGV[1], 'y')"


async def _key_on(client: RedisCluster, node: NodeLine, prefix: str) -> str:
    """A key of `prefix` whose slot `node` serves, found by asking the cluster."""
    for index in range(10_000):
        key = f"{prefix}{index}"
        slot = await client.cluster_keyslot(key)
        if any(first <= slot <= last for first, last in node.slots):
            return key
    raise AssertionError(f"no key of {prefix!r} on node {node.port}")


def _owner(owners: tuple[NodeLine, ...], slot: int) -> NodeLine:
    return next(node for node in owners if any(a <= slot <= b for a, b in node.slots))


async def test_three_primaries_with_a_replica_each_serve_every_slot(
    redis_cluster: ClusterServers,
) -> None:
    roles: Counter[str] = Counter()
    for host, port in redis_cluster.seeds:
        async with Redis(host=host, port=port, decode_responses=True) as node:
            info = await node.execute_command("CLUSTER INFO")
            assert info["cluster_state"] == "ok"
            assert int(info["cluster_slots_assigned"]) == 16384
            assert int(info["cluster_size"]) == 3  # primaries serving slots
            assert int(info["cluster_known_nodes"]) == 6
            replication = await node.info("replication")
            roles[replication["role"]] += 1
            if replication["role"] == "master":
                assert replication["connected_slaves"] == 1
            else:
                assert replication["master_link_status"] == "up"
    assert roles == {"master": 3, "slave": 3}
    assert redis_cluster.url == "redis+cluster://" + ",".join(
        f"127.0.0.1:{port}" for _, port in redis_cluster.seeds
    )


async def test_keys_land_on_every_primary(
    redis_cluster: ClusterServers, cluster_client: RedisCluster
) -> None:
    keys = [f"spread:{index}" for index in range(1000)]
    pipe = cluster_client.pipeline()  # grouped per node by the client
    for key in keys:
        pipe.set(key, "v")
    assert all(await pipe.execute())

    owners = redis_cluster.owners()
    expected: Counter[int] = Counter()
    for key in keys:
        expected[_owner(owners, await cluster_client.cluster_keyslot(key)).port] += 1
    assert len(expected) == 3
    for node in owners:
        async with Redis(port=node.port) as primary:
            assert await primary.dbsize() == expected[node.port]


async def test_a_script_keeps_to_one_hash_slot(
    redis_cluster: ClusterServers, cluster_client: RedisCluster
) -> None:
    assert await cluster_client.eval(TWO_KEYS, 2, "{task:1}:state", "{task:1}:log", "v") == "OK"
    assert await cluster_client.get("{task:1}:log") == "v"

    first, second = redis_cluster.owners()[:2]
    here, also_here = (
        await _key_on(cluster_client, first, "a"),
        await _key_on(cluster_client, first, "b"),
    )
    assert await cluster_client.cluster_keyslot(here) != await cluster_client.cluster_keyslot(
        also_here
    )
    # redis-py refuses before sending; the server refuses too, even with both slots its own.
    with pytest.raises(RedisClusterException, match="same key slot"):
        await cluster_client.eval(TWO_KEYS, 2, here, also_here, "v")
    async with Redis(port=first.port) as node:
        with pytest.raises(ResponseError, match="CROSSSLOT"):
            await node.eval(TWO_KEYS, 2, here, also_here, "v")
        # A key the script was not given, of a slot another node serves: refused.
        elsewhere = await _key_on(cluster_client, second, "c")
        with pytest.raises(ResponseError, match="non local key"):
            await node.eval(UNDECLARED, 1, here, elsewhere)
        # Of another slot of the same node it passes, on 6.2 and 7 alike, until a
        # resharding moves that slot away: why every key must be in KEYS.
        assert await node.eval(UNDECLARED, 1, here, also_here) == b"OK"


async def test_a_killed_primary_is_replaced_by_its_replica_under_writes(
    redis_cluster: ClusterServers, cluster_client: RedisCluster
) -> None:
    victim = redis_cluster.owners()[0]
    replicas = {node.id for node in redis_cluster.views()[0].nodes if node.master == victim.id}
    tag = await _key_on(cluster_client, victim, "tag")
    # Acknowledged by the replica before the kill (WAIT counts this connection's
    # writes), so the promoted replica must have them.
    async with Redis(port=victim.port) as primary:
        for index in range(100):
            await primary.set(f"{{{tag}}}:before:{index}", index)
        assert await primary.execute_command("WAIT", 1, 5000) == 1

    outcomes: list[RedisError | RedisClusterException | None] = []
    stop = asyncio.Event()

    async def write() -> None:
        index = 0
        while not stop.is_set():
            # Every other key on the victim's slots, the rest anywhere.
            key = f"{{{tag}}}:during:{index}" if index % 2 == 0 else f"during:{index}"
            try:
                await cluster_client.set(key, index)
                outcomes.append(None)
            # redis-py's slot errors are no RedisError; anything else ends the test.
            except (RedisError, RedisClusterException) as error:
                outcomes.append(error)
                await asyncio.sleep(0.01)
            index += 1

    async def successes_in_a_row(count: int, *, after: int = 0) -> None:
        while len(outcomes) - after < count or any(outcomes[-count:]):
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(write())
    killed = None
    try:
        await asyncio.wait_for(successes_in_a_row(50), 10)
        killed = await asyncio.to_thread(redis_cluster.kill_primary, 0)
        await asyncio.to_thread(redis_cluster.wait_failover)
        promoted = redis_cluster.owners()[0]
        assert promoted.slots == victim.slots
        assert promoted.id in replicas
        # The same client object carries on once the replica serves the slots.
        await asyncio.wait_for(successes_in_a_row(100, after=len(outcomes)), 30)
    finally:
        stop.set()
        await writer
        if killed is not None:
            # Not in a thread: the node would die with it (PR_SET_PDEATHSIG).
            redis_cluster.restart(killed)

    before = [f"{{{tag}}}:before:{index}" for index in range(100)]
    assert await cluster_client.mget(before) == [str(index) for index in range(100)]
    # The old primary came back as a replica of the one that replaced it.
    async with Redis(port=victim.port, decode_responses=True) as old:
        replication = await old.info("replication")
    assert replication["role"] == "slave"
    assert replication["master_port"] == promoted.port
