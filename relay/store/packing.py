"""Connections that pack commands with hiredis, as redis-py's synchronous client does.

redis-py packs a command for its synchronous connections with hiredis (in C) when
hiredis is installed, and for its asyncio connections in Python, one bytes join per
argument over a buffer of up to 6 KB. A claim names 132 keys per shard it calls, a
write-back a few per outcome: that packing was about 15% of a polling worker's own
CPU. These connection classes pack with the synchronous client's own serializer
(`redis.connection.HiredisRespSerializer`, over `hiredis.pack_command`): the same
bytes, and the same DataError for a value Redis cannot take.

The asyncio cluster client picks its connection class itself (no option for it):
`relay.store.cluster_client.RelayCluster` swaps it for its packing variant.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection
from redis.connection import HiredisRespSerializer

_SERIALIZER = HiredisRespSerializer()  # holds no state: one serves every connection


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = _SERIALIZER.pack(*args)
        return packed


class PackedConnection(_HiredisPacking, Connection):
    pass


class PackedSSLConnection(_HiredisPacking, SSLConnection):
    pass


class PackedUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


class PackedSentinelConnection(_HiredisPacking, SentinelManagedConnection):
    pass


class PackedSentinelSSLConnection(_HiredisPacking, SentinelManagedSSLConnection):
    pass


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: PackedConnection,
    SSLConnection: PackedSSLConnection,
    UnixDomainSocketConnection: PackedUnixConnection,
    SentinelManagedConnection: PackedSentinelConnection,
    SentinelManagedSSLConnection: PackedSentinelSSLConnection,
}


def packed(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """The hiredis-packing variant of one of redis-py's asyncio connection classes."""
    return _PACKED[connection_class]
