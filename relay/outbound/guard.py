"""Keep client-chosen webhook URLs away from the relay's own network (SSRF).

URLs are checked at registration and again at every connection, through
the resolver the transport uses, because DNS can change between the two.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class Blocked(Exception):
    """The address is not a public one and private webhooks are not allowed."""


def is_public_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address embedded in IPv6 (mapped, 6to4, Teredo, NAT64) is judged as itself.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    """The IP address if `host` is one (with or without IPv6 brackets), else None."""
    candidate = host.strip("[]")
    try:
        ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        return None
    return candidate


class AddressGuard:
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def check_addresses(self, host: str, addresses: list[str]) -> None:
        if self.allow_private:
            return
        for address in addresses:
            if not is_public_address(address):
                raise Blocked(f"{host} resolves to a non-public address ({address})")

    async def check_url(self, url: str) -> None:
        """Raise `Blocked` if the URL's host is, or resolves to, a non-public address.

        A host that does not resolve passes: it is checked again at each connection.
        """
        if self.allow_private:
            return
        host = urlsplit(url).hostname or ""
        literal = literal_address(host)
        if literal is not None:
            self.check_addresses(host, [literal])
            return
        if host.lower() in {"localhost", "localhost.localdomain"} or host.lower().endswith(
            ".localhost"
        ):
            raise Blocked(f"{host} is a loopback name")
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM), 5.0
            )
        except (OSError, TimeoutError, UnicodeError):
            return
        self.check_addresses(host, [str(info[4][0]) for info in infos])
