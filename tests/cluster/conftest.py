"""A real Redis Cluster (3 primaries, a replica each), started once and only if a test asks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster

from relay.devtools.redis_cluster import ClusterServers, command
from relay.store.cluster_client import RelayCluster
from relay.store.redis import connect


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterServers]:
    with ClusterServers(primaries=3, replicas=1) as cluster:
        yield cluster


@pytest.fixture
def empty_cluster(redis_cluster: ClusterServers) -> ClusterServers:
    """The session's cluster with every primary flushed: whichever nodes serve now, as an
    earlier test's failover may have swapped roles (the replicas follow their primary)."""
    for node in redis_cluster.owners():
        command(node.port, "FLUSHALL")
    return redis_cluster


@pytest.fixture
async def cluster_client(redis_cluster: ClusterServers) -> AsyncIterator[RedisCluster]:
    """redis-py's cluster client on every seed, the cluster emptied first."""
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in redis_cluster.seeds],
        decode_responses=True,
    )
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    await client.aclose()


@pytest.fixture
def seed_url(redis_cluster: ClusterServers) -> str:
    """The contract's URL with one seed only (a replica when the session began): the
    relay must find the rest of the cluster by itself."""
    host, port = redis_cluster.seeds[-1]
    return f"redis+cluster://{host}:{port}"


@pytest.fixture
async def relay_client(seed_url: str) -> AsyncIterator[RelayCluster]:
    """The client the relay itself opens for `seed_url`."""
    client = connect(seed_url)
    assert isinstance(client, RelayCluster)
    yield client
    await client.aclose()


def key_of(client: RedisCluster, slots: tuple[tuple[int, int], ...], prefix: str = "k") -> str:
    """A key whose hash slot is in `slots` (computed locally, as the client routes it)."""
    return next(
        key
        for key in (f"{prefix}{index}" for index in range(100_000))
        if any(first <= client.keyslot(key) <= last for first, last in slots)
    )
