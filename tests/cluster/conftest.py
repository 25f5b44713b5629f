"""A real Redis Cluster (3 primaries, a replica each), started once and only if a test asks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster

from relay.devtools.redis_cluster import ClusterServers


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterServers]:
    with ClusterServers(primaries=3, replicas=1) as cluster:
        yield cluster


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
