"""The relay's Redis Cluster client: redis-py's, with what it lacks for a relay.

redis-py (5.3) follows MOVED and ASK by itself (a resharding: it patches its
slot map from each MOVED and reloads the whole map every `reinitialize_steps`
redirections) and reloads the map after a connection error, retrying a command
`cluster_error_retry_attempts` times. Three gaps remain, filled here:

- Its retries do not wait: a refused connection to a killed primary fails all
  of them within milliseconds, while the cluster takes seconds to promote the
  replica (`cluster-node-timeout` to notice, then an election). `RelayCluster`
  retries a command or a pipeline for up to `ride_out` seconds, `PAUSE` apart,
  as long as the error is one a failover or a resharding causes (connection
  refused or reset, CLUSTERDOWN, a slot not covered yet). A timeout is not
  retried: its time is spent already. Past `ride_out` the caller sees the
  error, a `RedisError`, as it would a single Redis' outage.
- It forgets a startup node that failed a command, and after a whole-cluster
  outage it knows none and never reconnects (redis-py #2555, #3693): the seeds
  of the URL are put back before every reload of the slot map.
- A cluster it cannot reach raises `RedisClusterException`, which is no
  `RedisError`: it is raised as a `ConnectionError` here, so every caller's
  handling of a Redis outage (a 503, a skipped loop turn) applies.

And `ping()` asks every primary, not one node: "the cluster answers" means
every slot can be served.

A command whose connection broke after it was sent may have run: redis-py
itself sends it again, and so does the ride-out. What the relay writes must
bear running twice (a failover may also lose acknowledged writes, as with
Sentinel: replication is asynchronous).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ConnectionError,
    RedisClusterException,
    SlotNotCoveredError,
)
from redis.typing import EncodableT

from relay.store import packing

T = TypeVar("T")

PAUSE = 0.25  # seconds between two tries of a command while the cluster heals
# Errors of a cluster on the move: a primary gone (until its replica is promoted),
# the cluster marked down meanwhile, a slot without an owner yet.
_PASSING = (ConnectionError, ClusterDownError, SlotNotCoveredError)
_CLOSED_TRANSPORT = "unable to perform operation on"  # asyncio: the transport is closed
# ConnectionErrors that no waiting mends.
_LASTING = (AuthenticationError, AuthorizationError)


class RelayCluster(RedisCluster):
    """A `RedisCluster` on `seeds` that rides out a failover for up to `ride_out` seconds."""

    connection_pool: Any  # redis-py's typing asks every client for one; a cluster has none

    def __init__(self, seeds: Sequence[tuple[str, int]], *, ride_out: float, **options: Any):
        super().__init__(startup_nodes=[ClusterNode(host, port) for host, port in seeds], **options)
        self.seeds = tuple(seeds)
        self.ride_out = ride_out
        # redis-py picks the connection class itself (no option for it) and makes every
        # node it finds later from `connection_kwargs`: the hiredis-packing variant
        # goes there, and to the nodes already made (see relay.store.packing).
        chosen = packing.packed(self.connection_kwargs["connection_class"])
        assert issubclass(chosen, Connection)  # TCP or TLS: a cluster has no other
        self.connection_kwargs["connection_class"] = chosen
        for node in self.nodes_manager.startup_nodes.values():
            node.connection_class = chosen

    async def initialize(self) -> RelayCluster:
        # redis-py calls this whenever its slot map must be (re)loaded; once loaded, it
        # returns at once, and the seeds are already known.
        self._remember_seeds()
        try:
            await super().initialize()
        except RedisClusterException as error:
            raise ConnectionError(str(error)) from error
        return self

    def _remember_seeds(self) -> None:
        known = self.nodes_manager.startup_nodes
        for host, port in self.seeds:
            seed = ClusterNode(host, port, **self.connection_kwargs)
            known.setdefault(seed.name, seed)

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        return await self.riding_out(
            lambda: super(RelayCluster, self).execute_command(*args, **kwargs)
        )

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)  # which refuses them
        return _RidingPipeline(self)

    async def ping(self, **kwargs: Any) -> bool:
        kwargs.setdefault("target_nodes", self.PRIMARIES)
        return bool(await self.execute_command("PING", **kwargs))

    async def riding_out(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()`, tried again `PAUSE` apart while the cluster heals, `ride_out` at most."""
        deadline = time.monotonic() + self.ride_out
        while True:
            try:
                return await attempt()
            except _PASSING as error:
                if isinstance(error, _LASTING) or time.monotonic() + PAUSE > deadline:
                    if isinstance(error, SlotNotCoveredError):  # no RedisError: made one
                        raise _cluster_down(error) from error
                    raise
            except RuntimeError as error:
                # asyncio's word for a write on a connection the killed node closed,
                # which redis-py lets through as it is: a connection error like any.
                if not str(error).startswith(_CLOSED_TRANSPORT):
                    raise
                if time.monotonic() + PAUSE > deadline:
                    raise ConnectionError(str(error)) from error
            await asyncio.sleep(PAUSE)


def _cluster_down(error: SlotNotCoveredError) -> ClusterDownError:
    return ClusterDownError(str(error))  # type: ignore[no-untyped-call]


class _RidingPipeline(ClusterPipeline):
    """A pipeline of `RelayCluster`: sent again as a whole while the cluster heals.

    redis-py empties its queue whatever the outcome of `execute`, so the pipeline
    keeps its own list of what was queued and queues it again for each new try.
    Every command the relay pipelines bears running twice (reads, ZADD, ZREM, SREM,
    PEXPIRE), so sending again those that had already run changes nothing.
    """

    connection_pool: Any  # as RelayCluster's

    def __init__(self, client: RelayCluster) -> None:
        super().__init__(client)
        self.cluster = client
        self.queued: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **kwargs: Any) -> ClusterPipeline:
        self.queued.append((args, kwargs))
        return super().execute_command(*args, **kwargs)

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        queued, self.queued = self.queued, []
        tries = 0

        async def attempt() -> list[Any]:
            nonlocal tries
            if tries:
                for args, kwargs in queued:
                    ClusterPipeline.execute_command(self, *args, **kwargs)
            tries += 1
            return await ClusterPipeline.execute(self, raise_on_error, allow_redirections)

        return await self.cluster.riding_out(attempt)
