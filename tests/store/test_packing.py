"""Commands packed by hiredis (relay.store.packing) are the bytes redis-py's own asyncio
packing sends, and every asyncio client the store opens on one Redis or Sentinel uses them."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from relay.store import packing
from relay.store.cluster_client import RelayCluster
from relay.store.redis import connect

COMMANDS: list[tuple[Any, ...]] = [
    ("PING",),
    ("SET", "relay:{s1}:task:abc", "é, ünïcode ✓", "PX", 1000),
    ("EVALSHA", "0" * 40, 2, "k1", "k2", "", "0", -1, 1.5, 0.1, 10**20, b"\x00\xff raw"),
    ("CONFIG GET", "maxmemory"),  # a command given with its subcommand
    (b"CLIENT SETNAME", "relay"),
    ("MGET", *(f"relay:{{s7}}:task:{i}" for i in range(200))),  # past the 6 KB buffer cut
]


def python_packed(*args: Any) -> bytes:
    """What redis-py's own asyncio connection sends for a command."""
    return b"".join(Connection().pack_command(*args))


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_hiredis_packs_the_bytes_redis_py_would_send(args: tuple[Any, ...]) -> None:
    assert b"".join(packing.PackedConnection().pack_command(*args)) == python_packed(*args)


@pytest.mark.parametrize("value", [None, True, object()])
def test_a_value_redis_cannot_take_is_a_data_error_as_before(value: object) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", value)
    with pytest.raises(DataError):
        packing.PackedConnection().pack_command("SET", "k", value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", packing.PackedConnection),
        ("rediss://127.0.0.1:6380/0", packing.PackedSSLConnection),
        ("unix:///tmp/redis.sock?db=1", packing.PackedUnixConnection),
        ("redis+sentinel://127.0.0.1:26379/mymaster", packing.PackedSentinelConnection),
    ],
)
def test_every_single_redis_client_packs_with_hiredis(url: str, expected: type) -> None:
    client = connect(url)  # opens no connection yet
    assert isinstance(client, Redis)
    assert client.connection_pool.connection_class is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", packing.PackedConnection),
        ("rediss+cluster://127.0.0.1:7000", packing.PackedSSLConnection),
    ],
)
def test_every_node_of_a_cluster_client_packs_with_hiredis(url: str, expected: type) -> None:
    client = connect(url)  # opens no connection yet
    assert isinstance(client, RelayCluster)
    nodes = client.nodes_manager.startup_nodes.values()
    assert nodes and all(node.connection_class is expected for node in nodes)
    # Nodes found later (the slot map, a MOVED) are made from these.
    assert client.connection_kwargs["connection_class"] is expected
    assert client.nodes_manager.connection_kwargs["connection_class"] is expected
