"""Keep client-chosen webhook URLs away from the relay's own network (SSRF).

URLs are checked at registration and again at every connection, through
the resolver the transport uses, because DNS can change between the two.

An address is public only by an allow-list: IPv6 inside global unicast
2000::/3, IPv4 anywhere, and then neither in the IANA special-purpose
registries' non-global ranges nor a known cloud metadata address. An IPv6
form that carries an IPv4 address is judged by that IPv4 address, since
that is where a packet to it ends up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import unicodedata
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# IANA IPv4 Special-Purpose Address Registry
# (https://www.iana.org/assignments/iana-ipv4-special-registry/), every entry whose
# "Globally Reachable" is False or N/A, plus multicast. Where a block holds a few
# global entries (192.0.0.9/32 and 192.0.0.10/32, anycast PCP and TURN), the whole
# block is refused: no webhook receiver lives there.
_IPV4_REFUSED = _networks(
    "0.0.0.0/8",  # "this network" (RFC 791)
    "10.0.0.0/8",  # private use (RFC 1918)
    "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",  # loopback (RFC 1122)
    "169.254.0.0/16",  # link local (RFC 3927)
    "172.16.0.0/12",  # private use (RFC 1918)
    "192.0.0.0/24",  # IETF protocol assignments, DS-Lite, NAT64 discovery (RFC 6890)
    "192.0.2.0/24",  # documentation, TEST-NET-1 (RFC 5737)
    "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
    "192.168.0.0/16",  # private use (RFC 1918)
    "198.18.0.0/15",  # benchmarking (RFC 2544)
    "198.51.100.0/24",  # documentation, TEST-NET-2 (RFC 5737)
    "203.0.113.0/24",  # documentation, TEST-NET-3 (RFC 5737)
    "224.0.0.0/4",  # multicast (RFC 5771)
    "240.0.0.0/4",  # reserved (RFC 1112), with 255.255.255.255 limited broadcast (RFC 919)
)

# Only global unicast space is allowed (IANA IPv6 Address Space registry); the rest
# (unassigned space included) is refused whatever a table says.
_IPV6_ALLOWED = _networks("2000::/3")

# IANA IPv6 Special-Purpose Address Registry
# (https://www.iana.org/assignments/iana-ipv6-special-registry/), every entry whose
# "Globally Reachable" is False or N/A, plus what the registry leaves to others:
# deprecated site-local, unique-local, multicast. Most lie outside 2000::/3 and are
# refused by the allow-list already; they are written out so the table is whole.
# 2001::/23 is refused whole: its few global entries are anycast and protocol
# services, not receivers. Teredo (2001::/32) and 6to4 (2002::/16) are judged by
# the IPv4 address they carry before this table is read.
_IPV6_REFUSED = _networks(
    "::/128",  # unspecified (RFC 4291)
    "::1/128",  # loopback (RFC 4291)
    "::ffff:0:0/96",  # IPv4-mapped (RFC 4291), judged by its IPv4 address first
    "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation (RFC 8215): a private translator
    "100::/64",  # discard-only (RFC 6666)
    "100:0:0:1::/64",  # dummy IPv6 prefix (RFC 9780)
    "2001::/23",  # IETF protocol assignments (RFC 2928)
    "2001:db8::/32",  # documentation (RFC 3849)
    "3fff::/20",  # documentation (RFC 9637)
    "3ffe::/16",  # the returned 6bone test space (RFC 3701)
    "5f00::/16",  # segment routing SIDs (RFC 9602)
    "fc00::/7",  # unique local (RFC 4193)
    "fe80::/10",  # link-local unicast (RFC 4291)
    "fec0::/10",  # deprecated site-local (RFC 3879)
    "ff00::/8",  # multicast (RFC 4291)
)

# Cloud metadata servers, named even where a range above holds them, because one of
# them (Azure's) sits in public address space.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure IMDS, OpenStack, DigitalOcean, Oracle
        "168.63.129.16",  # Azure's wire server
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)

# IPv6 prefixes whose last 32 bits are an IPv4 address: mapped (RFC 4291),
# compatible (deprecated, RFC 4291, which also holds :: and ::1), SIIT translated
# (RFC 2765) and the NAT64 well-known prefix (RFC 6052).
_LOW_32_BITS_IPV4 = _networks("::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # RFC 3056: bits 16-47
_TEREDO = ipaddress.IPv6Network("2001::/32")  # RFC 4380: the client's, inverted, last


class Blocked(Exception):
    """The address is not a public one and private webhooks are not allowed."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (and routes to), or None."""
    value = int(ip)
    if any(ip in net for net in _LOW_32_BITS_IPV4):
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    if ip in _TEREDO:
        return ipaddress.IPv4Address(~value & 0xFFFFFFFF)
    return None


def is_public_ip(ip: IPAddress) -> bool:
    if ip in _METADATA:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        carried = embedded_ipv4(ip)
        if carried is not None:
            return is_public_ip(carried)
        if not any(ip in net for net in _IPV6_ALLOWED):
            return False
        return not any(ip in net for net in _IPV6_REFUSED)
    return not any(ip in net for net in _IPV4_REFUSED)


def is_public_address(address: str) -> bool:
    """Whether a resolver's answer (a canonical address, IPv6 maybe with a zone) is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return is_public_ip(ip)


def _inet_aton_part(part: str) -> int | None:
    """One part of a numeric IPv4 host as inet_aton reads it: decimal, 0-octal or 0x-hex."""
    if part[:2] in ("0x", "0X"):
        digits, base, allowed = part[2:], 16, "0123456789abcdefABCDEF"
    elif part.startswith("0"):
        digits, base, allowed = part, 8, "01234567"
    else:
        digits, base, allowed = part, 10, "0123456789"
    if not digits or any(c not in allowed for c in digits):
        return None
    return int(digits, base)


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a resolver reads in a numeric host, in any of inet_aton's forms.

    `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` are all 127.0.0.1 to
    getaddrinfo, without any DNS. One trailing dot is read the same way
    (browsers do), as the stricter reading here only ever refuses more.
    """
    parts = host.removesuffix(".").split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_inet_aton_part(p) for p in parts]
    if None in values:
        return None
    *head, last = (v for v in values if v is not None)
    # Each leading part is one byte; the last fills the bytes that are left.
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = 0
    for byte in head:
        value = value << 8 | byte
    return ipaddress.IPv4Address(value << (8 * (4 - len(head))) | last)


# Label separators IDNA reads as `.` (ideographic and fullwidth full stops).
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def literal_address(host: str) -> str | None:
    """The IP address `host` stands for if it is a numeric one, else None.

    With or without IPv6 brackets; numeric IPv4 forms come back canonical.
    Fullwidth digits and dots count as their ASCII selves, as IDNA maps them.
    """
    candidate = unicodedata.normalize("NFKC", host).translate(_DOTS).strip("[]")
    if not candidate:
        return None
    try:
        ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        numeric = numeric_ipv4(candidate)
        return None if numeric is None else str(numeric)
    return candidate


def _is_loopback_name(host: str) -> bool:
    name = host.lower().removesuffix(".")
    return name in {"localhost", "localhost.localdomain"} or name.endswith(".localhost")


class AddressGuard:
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def check_addresses(self, host: str, addresses: list[str]) -> None:
        """Raise `Blocked` if any address is not public; the message never names one."""
        if self.allow_private:
            return
        if not all(is_public_address(a) for a in addresses):
            raise Blocked(f"{host} resolves to a non-public address")

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
        if _is_loopback_name(host):
            raise Blocked(f"{host} is a loopback name")
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM), 5.0
            )
        except (OSError, TimeoutError, UnicodeError):
            return
        self.check_addresses(host, [str(info[4][0]) for info in infos])
