"""Opening Redis clients, shared by every process: plain URLs and Sentinel.

`RELAY_REDIS_URL` takes `redis://`, `rediss://` and `unix://` as redis-py
does, and a Sentinel form for high availability:

    redis+sentinel://[:password@]host1:26379,host2:26379/<master-name>[/<db>]

With it, every client asks the sentinels for the current primary and follows
a failover by itself (connections to a demoted primary are dropped and
re-resolved). The password, if any, is the data nodes' password.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import redis as sync_redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from relay.store import keys

SENTINEL_SCHEME = "redis+sentinel"

# What the store talks to: one Redis (plain or Sentinel-managed) or a Redis Cluster.
# Every key a store call names is in one hash slot, so both answer the same.
Client = Redis | RedisCluster
_CLIENT_OPTIONS: dict[str, Any] = {
    # Timeouts keep a Redis outage a quick error (503, a skipped loop turn)
    # rather than a hang; the pool reconnects by itself when Redis is back.
    "socket_timeout": 5.0,
    "socket_connect_timeout": 2.0,
    "health_check_interval": 15,
    "retry_on_timeout": False,
}


@dataclasses.dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_sentinel(url: str) -> SentinelTarget | None:
    """The Sentinel target of a `redis+sentinel://` URL; None for other URLs.

    Raises ValueError when the Sentinel URL is malformed.
    """
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    hosts = parts.netloc.rpartition("@")[2]
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("each sentinel must be host:port")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("the path must be /<master-name> or /<master-name>/<db>")
    return SentinelTarget(
        sentinels=tuple(sentinels),
        master=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def connect(url: str) -> Redis:
    target = parse_sentinel(url)
    if target is None:
        client: Redis = Redis.from_url(url, decode_responses=True, **_CLIENT_OPTIONS)
        return client
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={"socket_timeout": 2.0, "socket_connect_timeout": 2.0},
        decode_responses=True,
        db=target.db,
        username=target.username,
        password=target.password,
        **_CLIENT_OPTIONS,
    )
    primary: Redis = sentinel.master_for(target.master)
    return primary


def ping(url: str, timeout: float = 3.0) -> None:
    """Raise if Redis does not answer (a blocking check for process start)."""
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


def now_ms() -> int:
    return int(time.time() * 1000)


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


PREFIX = keys.PREFIX
