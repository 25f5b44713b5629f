"""Cluster URLs: what `parse_cluster` reads from them and what `connect` opens (no server)."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection, SSLConnection

from relay.store import packing
from relay.store.cluster_client import RelayCluster
from relay.store.redis import RIDE_OUT, ClusterTarget, connect, parse_cluster


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("redis+cluster://10.0.0.1:7000", ClusterTarget(seeds=(("10.0.0.1", 7000),))),
        (
            "redis+cluster://:s%40cret@redis-0.redis:6379,redis-1.redis:6380/",
            ClusterTarget(
                seeds=(("redis-0.redis", 6379), ("redis-1.redis", 6380)), password="s@cret"
            ),
        ),
        (
            "rediss+cluster://relay:pw@[::1]:7000",
            ClusterTarget(seeds=(("::1", 7000),), username="relay", password="pw", tls=True),
        ),
    ],
)
def test_cluster_urls_parse(url: str, target: ClusterTarget) -> None:
    assert parse_cluster(url) == target


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "redis+sentinel://h:26379/m", "unix:///tmp/r.sock"]
)
def test_other_urls_are_no_cluster(url: str) -> None:
    assert parse_cluster(url) is None


def test_connect_opens_the_relay_cluster_client_on_the_seeds_with_its_options() -> None:
    client = connect("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001")  # connects lazily
    assert isinstance(client, RelayCluster)
    assert client.seeds == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert sorted(client.nodes_manager.startup_nodes) == ["10.0.0.1:7000", "10.0.0.2:7001"]
    assert client.ride_out == RIDE_OUT
    options = client.connection_kwargs
    assert options["password"] == "pw"
    # redis-py's TCP connection, packing commands with hiredis (relay.store.packing).
    assert options["connection_class"] is packing.PackedConnection
    assert issubclass(options["connection_class"], Connection)
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (5.0, 2.0)
    assert client.get_encoder().decode_responses


def test_rediss_cluster_connects_with_tls() -> None:
    client = connect("rediss+cluster://10.0.0.1:7000")
    assert isinstance(client, RelayCluster)
    assert client.connection_kwargs["connection_class"] is packing.PackedSSLConnection
    assert issubclass(client.connection_kwargs["connection_class"], SSLConnection)
    assert client.connection_kwargs["ssl_cert_reqs"] == "required"
