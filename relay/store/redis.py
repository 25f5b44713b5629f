"""Opening Redis clients, shared by every process: plain URLs, Sentinel and Redis Cluster.

`RELAY_REDIS_URL` takes `redis://`, `rediss://` and `unix://` as redis-py
does, a Sentinel form for high availability:

    redis+sentinel://[:password@]host1:26379,host2:26379/<master-name>[/<db>]

With it, every client asks the sentinels for the current primary and follows
a failover by itself (connections to a demoted primary are dropped and
re-resolved). The password, if any, is the data nodes' password.

And a Redis Cluster form (`rediss+cluster://` for TLS):

    redis+cluster://[:password@]host1:7000[,host2:7000...][/]

The hosts are seeds: the client asks them for the cluster's nodes and slots,
follows resharding (MOVED, ASK) and failover by itself, and rides out a
failover of up to `RIDE_OUT` seconds (see `relay.store.cluster_client`). The
password is every node's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import redis as sync_redis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.cluster import ClusterNode as SyncClusterNode
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.exceptions import ConnectionError, RedisClusterException, RedisError

from relay.store import keys, packing
from relay.store.cluster_client import RelayCluster

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS

# What the store talks to: one Redis (plain or Sentinel-managed) or a Redis Cluster.
# Every key a store call names is in one hash slot, so both answer the same.
Client = Redis | RedisCluster
_TIMEOUTS: dict[str, Any] = {
    # Timeouts keep a Redis outage a quick error (503, a skipped loop turn)
    # rather than a hang; the pool reconnects by itself when Redis is back.
    "socket_timeout": 5.0,
    "socket_connect_timeout": 2.0,
    "health_check_interval": 15,
}
_CLIENT_OPTIONS: dict[str, Any] = {**_TIMEOUTS, "retry_on_timeout": False}
# How long a cluster command waits for a failover to end before its caller sees
# the error. The test cluster (cluster-node-timeout 1 s) promotes a replica in
# about 2-3 s; on Redis' default cluster-node-timeout of 15 s a failover takes
# 15-20 s and callers see a RedisError for the rest of it, as in an outage.
RIDE_OUT = 5.0
_CLUSTER_OPTIONS: dict[str, Any] = {
    **_TIMEOUTS,
    # One immediate retry after a reload of the slot map (what a stale map needs);
    # waiting out a failover is RelayCluster's. No connect retries inside a node:
    # they would only multiply a dead node's connect timeout.
    "cluster_error_retry_attempts": 1,
    "connection_error_retry_attempts": 0,
    # redis-py's default: patch the map from each MOVED, reload it every 5th.
    "reinitialize_steps": 5,
}


@dataclasses.dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


@dataclasses.dataclass(frozen=True)
class ClusterTarget:
    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False


def _host_ports(parts: SplitResult, what: str) -> tuple[tuple[str, int], ...]:
    """The `host:port,host:port` list of a URL; ValueError naming `what` when malformed."""
    hosts = parts.netloc.rpartition("@")[2]
    found = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"each {what} must be host:port")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


def _credentials(parts: SplitResult) -> dict[str, str | None]:
    return {
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


def parse_sentinel(url: str) -> SentinelTarget | None:
    """The Sentinel target of a `redis+sentinel://` URL; None for other URLs.

    Raises ValueError when the Sentinel URL is malformed.
    """
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    sentinels = _host_ports(parts, "sentinel")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("the path must be /<master-name> or /<master-name>/<db>")
    return SentinelTarget(
        sentinels=sentinels,
        master=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        **_credentials(parts),
    )


def parse_cluster(url: str) -> ClusterTarget | None:
    """The seeds of a `redis+cluster://` or `rediss+cluster://` URL; None for other URLs.

    Raises ValueError when the cluster URL is malformed.
    """
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        return None
    seeds = _host_ports(parts, "seed node")
    if parts.path not in {"", "/"}:
        raise ValueError("a cluster URL takes no path: a cluster has no database but 0")
    if parts.query or parts.fragment:
        raise ValueError("a cluster URL takes nothing after the seed nodes")
    return ClusterTarget(seeds=seeds, tls=CLUSTER_SCHEMES[parts.scheme], **_credentials(parts))


def connect(url: str) -> Client:
    cluster = parse_cluster(url)
    if cluster is not None:
        return RelayCluster(
            cluster.seeds,
            ride_out=RIDE_OUT,
            decode_responses=True,
            username=cluster.username,
            password=cluster.password,
            ssl=cluster.tls,
            **_CLUSTER_OPTIONS,
        )
    target = parse_sentinel(url)
    if target is None:
        # As Redis.from_url, with a connection class that packs commands in C.
        options = {"decode_responses": True, **_CLIENT_OPTIONS, **parse_url(url)}
        connection_class = options.pop("connection_class", Connection)
        pool = ConnectionPool(connection_class=packing.packed(connection_class), **options)
        return Redis.from_pool(pool)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={"socket_timeout": 2.0, "socket_connect_timeout": 2.0},
        decode_responses=True,
        db=target.db,
        username=target.username,
        password=target.password,
        **_CLIENT_OPTIONS,
    )
    primary: Redis = sentinel.master_for(
        target.master, connection_class=packing.packed(SentinelManagedConnection)
    )
    return primary


@contextlib.asynccontextmanager
async def subscriber(client: Client, turn: int = 0) -> AsyncIterator[Redis]:
    """A plain connection to SUBSCRIBE on: `client` itself, or one node of a cluster.

    redis-py's cluster client has no pub/sub. A classic PUBLISH on a cluster
    reaches every node, so any node hears it: `turn` (the caller's count of
    attempts) picks which, in turn, among the nodes known and the seeds, so an
    attempt after a broken subscription tries another node. A node connection
    is closed on leaving the block.
    """
    if isinstance(client, Redis):
        yield client
        return
    with contextlib.suppress(RedisError, RedisClusterException):
        await client.initialize()  # without a slot map, a seed still serves
    manager = client.nodes_manager
    nodes = {**manager.startup_nodes, **manager.nodes_cache}
    if not nodes:
        raise ConnectionError("no node of the Redis Cluster to subscribe on")
    node = nodes[sorted(nodes)[turn % len(nodes)]]
    pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
    connection = Redis.from_pool(pool)
    try:
        yield connection
    finally:
        await connection.aclose()


async def publish(client: Client, channel: str, message: str) -> None:
    """PUBLISH on a Redis or a cluster (redis-py's cluster client has no `publish`)."""
    await client.execute_command("PUBLISH", channel, message)


def ping(url: str, timeout: float = 3.0) -> None:
    """Raise if Redis does not answer (a blocking check for process start)."""
    cluster = parse_cluster(url)
    if cluster is not None:
        _ping_cluster(cluster, timeout)
        return
    target = parse_sentinel(url)
    if target is None:
        client = sync_redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
    else:
        sentinel = sync_redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(target.sentinels),
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            db=target.db,
            username=target.username,
            password=target.password,
        )
        client = sentinel.master_for(target.master)  # type: ignore[no-untyped-call]
    try:
        client.ping()
    finally:
        client.close()


def _ping_cluster(target: ClusterTarget, timeout: float) -> None:
    """Every primary answers, as `RelayCluster.ping` means it for readiness."""
    try:
        client = SyncRedisCluster(
            startup_nodes=[
                SyncClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in target.seeds
            ],
            username=target.username,
            password=target.password,
            ssl=target.tls,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
        )
    except RedisClusterException as error:  # no RedisError: the caller expects one
        raise ConnectionError(str(error)) from error
    try:
        client.ping(target_nodes=SyncRedisCluster.PRIMARIES)
    finally:
        client.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


PREFIX = keys.PREFIX
