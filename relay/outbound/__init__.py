"""Outbound HTTP: one small interface, the transport behind it swappable.

The relay makes two kinds of outbound calls, fetches to the upstream and
webhook POSTs to clients, both through `Transport.post`. The aiohttp
transport is the default because it measured many times faster than httpx's
own pool at the concurrency the worker runs (see bench/).
"""

from relay.outbound.guard import AddressGuard, Blocked, is_public_address
from relay.outbound.transport import AiohttpTransport, Reply, Transport, TransportError

__all__ = [
    "AddressGuard",
    "AiohttpTransport",
    "Blocked",
    "Reply",
    "Transport",
    "TransportError",
    "is_public_address",
]
