"""Which addresses a webhook may connect to (relay.outbound.guard).

CONTRACT.md: unless RELAY_ALLOW_PRIVATE_WEBHOOKS=1, a webhook URL whose host is or resolves
to an address on loopback or a private network fails. Public is an allow-list: IPv6 global
unicast or any IPv4, minus the IANA special-purpose registries' non-global ranges,
deprecated site-local, multicast and the cloud metadata servers; an IPv6 form that carries
an IPv4 address (mapped, compatible, SIIT, NAT64, 6to4, Teredo) is judged by that address.
A host that a resolver reads as a number (2130706433, 0177.0.0.1, 0x7f.1, 127.1) is that
address, with no DNS involved.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from relay.outbound.guard import (
    AddressGuard,
    Blocked,
    embedded_ipv4,
    is_public_address,
    literal_address,
    numeric_ipv4,
)


def teredo(client: str) -> str:
    """A Teredo address (server 65.54.227.120, the RFC 4380 example) for `client`."""
    inverted = ~int(ipaddress.IPv4Address(client)) & 0xFFFFFFFF
    return str(ipaddress.IPv6Address((0x20010000_4136E378_800063BF << 32) | inverted))


NOT_PUBLIC = [
    # --- IPv4 special-purpose registry, one row per entry (bottom and top where useful)
    pytest.param("0.0.0.0", id="v4-unspecified"),
    pytest.param("0.1.2.3", id="v4-this-network"),
    pytest.param("10.0.0.1", id="v4-10/8"),
    pytest.param("10.255.255.255", id="v4-10/8-top"),
    pytest.param("100.64.0.1", id="v4-cgnat-bottom"),
    pytest.param("100.127.255.254", id="v4-cgnat-top"),
    pytest.param("127.0.0.1", id="v4-loopback"),
    pytest.param("127.255.255.254", id="v4-loopback-top"),
    pytest.param("169.254.0.1", id="v4-link-local"),
    pytest.param("172.16.0.1", id="v4-172.16/12"),
    pytest.param("172.31.255.254", id="v4-172.16/12-top"),
    pytest.param("192.0.0.1", id="v4-ietf-protocol"),
    pytest.param("192.0.0.9", id="v4-ietf-protocol-pcp-anycast"),
    pytest.param("192.0.0.170", id="v4-nat64-discovery"),
    pytest.param("192.0.2.1", id="v4-doc-test-net-1"),
    pytest.param("192.88.99.1", id="v4-deprecated-6to4-relay"),
    pytest.param("192.168.1.1", id="v4-192.168/16"),
    pytest.param("198.18.0.1", id="v4-benchmarking"),
    pytest.param("198.19.255.254", id="v4-benchmarking-top"),
    pytest.param("198.51.100.7", id="v4-doc-test-net-2"),
    pytest.param("203.0.113.9", id="v4-doc-test-net-3"),
    pytest.param("224.0.0.1", id="v4-multicast-all-hosts"),
    pytest.param("239.255.255.250", id="v4-multicast-ssdp"),
    pytest.param("240.0.0.1", id="v4-reserved-240/4"),
    pytest.param("255.255.255.255", id="v4-broadcast"),
    # --- cloud metadata servers
    pytest.param("169.254.169.254", id="v4-metadata-aws-gcp"),
    pytest.param("168.63.129.16", id="v4-metadata-azure-in-public-space"),
    pytest.param("100.100.100.200", id="v4-metadata-alibaba"),
    pytest.param("fd00:ec2::254", id="v6-metadata-aws"),
    # --- IPv6 special-purpose registry and what lies outside global unicast
    pytest.param("::1", id="v6-loopback"),
    pytest.param("::", id="v6-unspecified"),
    pytest.param("100::1", id="v6-discard"),
    pytest.param("100:0:0:1::1", id="v6-dummy-prefix"),
    pytest.param("2001:2::1", id="v6-benchmarking"),
    pytest.param("2001:10::1", id="v6-orchid-deprecated"),
    pytest.param("2001:20::1", id="v6-orchid-v2"),
    pytest.param("2001:1::1", id="v6-ietf-protocol-anycast"),
    pytest.param("2001:db8::1", id="v6-documentation"),
    pytest.param("3fff::1", id="v6-documentation-3fff"),
    pytest.param("3ffe::1", id="v6-returned-6bone"),
    pytest.param("5f00::1", id="v6-srv6-sids"),
    pytest.param("fc00::1", id="v6-unique-local-fc"),
    pytest.param("fd12:3456:789a::1", id="v6-unique-local-fd"),
    pytest.param("fe80::1", id="v6-link-local"),
    pytest.param("fe80::1%eth0", id="v6-link-local-zone-id"),
    pytest.param("fec0::1", id="v6-deprecated-site-local"),
    pytest.param("feff::1", id="v6-deprecated-site-local-top"),
    pytest.param("ff02::1", id="v6-multicast-link"),
    pytest.param("ff0e::1", id="v6-multicast-global-scope"),
    pytest.param("4000::1", id="v6-unassigned-outside-2000/3"),
    pytest.param("64:ff9b:1::1", id="v6-local-use-nat64"),
    pytest.param("64:ff9b:1::808:808", id="v6-local-use-nat64-even-of-public"),
    # --- IPv6 forms carrying a non-public IPv4 address
    pytest.param("::ffff:127.0.0.1", id="v6-mapped-loopback"),
    pytest.param("::ffff:10.0.0.1", id="v6-mapped-private"),
    pytest.param("::ffff:169.254.169.254", id="v6-mapped-metadata"),
    pytest.param("::ffff:168.63.129.16", id="v6-mapped-azure-metadata"),
    pytest.param("::ffff:100.64.0.1", id="v6-mapped-cgnat"),
    pytest.param("::ffff:0.0.0.0", id="v6-mapped-unspecified"),
    pytest.param("::ffff:224.0.0.1", id="v6-mapped-multicast"),
    pytest.param("::ffff:a00:1", id="v6-mapped-private-hex-form"),
    pytest.param("::127.0.0.1", id="v6-compatible-loopback"),
    pytest.param("::10.0.0.1", id="v6-compatible-private"),
    pytest.param("::ffff:0:7f00:1", id="v6-siit-loopback"),
    pytest.param("::ffff:0:a9fe:a9fe", id="v6-siit-metadata"),
    pytest.param("64:ff9b::7f00:1", id="v6-nat64-of-loopback"),
    pytest.param("64:ff9b::10.0.0.1", id="v6-nat64-of-private"),
    pytest.param("64:ff9b::169.254.169.254", id="v6-nat64-of-metadata"),
    pytest.param("64:ff9b::a83f:8110", id="v6-nat64-of-azure-metadata"),
    pytest.param("2002:7f00:1::1", id="v6-6to4-of-loopback"),
    pytest.param("2002:a00:1::1", id="v6-6to4-of-private"),
    pytest.param("2002:a9fe:a9fe::", id="v6-6to4-of-metadata"),
    pytest.param(teredo("127.0.0.1"), id="v6-teredo-of-loopback"),
    pytest.param(teredo("192.168.0.10"), id="v6-teredo-of-private"),
    # --- not resolver answers at all
    pytest.param("", id="empty"),
    pytest.param("localhost", id="name-localhost"),
    pytest.param("example.com", id="name"),
    pytest.param("[::1]", id="bracketed-not-a-resolver-answer"),
    pytest.param("127.1", id="short-form-v4-not-a-resolver-answer"),
    pytest.param("2130706433", id="integer-form-not-a-resolver-answer"),
    pytest.param("256.0.0.1", id="v4-out-of-range"),
]

PUBLIC = [
    pytest.param("8.8.8.8", id="google-dns"),
    pytest.param("1.1.1.1", id="cloudflare-dns"),
    pytest.param("93.184.215.14", id="v4-public"),
    pytest.param("100.63.255.255", id="v4-just-below-cgnat"),
    pytest.param("100.128.0.1", id="v4-just-above-cgnat"),
    pytest.param("172.15.255.255", id="v4-just-below-172.16/12"),
    pytest.param("172.32.0.1", id="v4-just-above-172.16/12"),
    pytest.param("11.0.0.1", id="v4-just-above-10/8"),
    pytest.param("168.63.129.17", id="v4-next-to-azure-metadata"),
    pytest.param("192.0.1.1", id="v4-just-above-192.0.0/24"),
    pytest.param("192.31.196.1", id="v4-as112-global"),
    pytest.param("223.255.255.254", id="v4-just-below-multicast"),
    pytest.param("2606:4700::1111", id="v6-cloudflare"),
    pytest.param("2001:4860:4860::8888", id="v6-google"),
    pytest.param("2a00:1450:4001:81b::200e", id="v6-public"),
    pytest.param("2001:200::1", id="v6-just-above-2001::/23"),
    pytest.param("3ffd:ffff::1", id="v6-just-below-3ffe::/16"),
    pytest.param("::ffff:8.8.8.8", id="v6-mapped-public"),
    pytest.param("::ffff:0:808:808", id="v6-siit-public"),
    pytest.param("64:ff9b::8.8.8.8", id="v6-nat64-of-public"),
    pytest.param("2002:808:808::1", id="v6-6to4-of-public"),
    pytest.param(teredo("8.8.8.8"), id="v6-teredo-of-public"),
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_not_public(address: str) -> None:
    assert is_public_address(address) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_public(address: str) -> None:
    assert is_public_address(address) is True


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        pytest.param("::ffff:127.0.0.1", "127.0.0.1", id="mapped"),
        pytest.param("::10.1.2.3", "10.1.2.3", id="compatible"),
        pytest.param("::1", "0.0.0.1", id="loopback-is-compatible-0.0.0.1"),
        pytest.param("::ffff:0:7f00:1", "127.0.0.1", id="siit"),
        pytest.param("64:ff9b::a9fe:a9fe", "169.254.169.254", id="nat64"),
        pytest.param("2002:c0a8:0101:5::1", "192.168.1.1", id="6to4"),
        pytest.param(teredo("10.9.8.7"), "10.9.8.7", id="teredo-client-uninverted"),
        pytest.param("2606:4700::1111", None, id="plain-v6"),
        pytest.param("64:ff9b:1::a9fe:a9fe", None, id="local-use-nat64-refused-whole"),
        pytest.param("::1:ffff:7f00:1", None, id="not-a-mapped-prefix"),
    ],
)
def test_embedded_ipv4(address: str, carried: str | None) -> None:
    found = embedded_ipv4(ipaddress.IPv6Address(address))
    assert (None if found is None else str(found)) == carried


# host -> the address it stands for, or None for a name
LITERALS = [
    pytest.param("1.2.3.4", "1.2.3.4", id="v4"),
    pytest.param("127.0.0.1", "127.0.0.1", id="v4-loopback"),
    pytest.param("::1", "::1", id="v6"),
    pytest.param("[::1]", "::1", id="v6-bracketed"),
    pytest.param("[2606:4700::1111]", "2606:4700::1111", id="v6-bracketed-public"),
    pytest.param("[::ffff:10.0.0.1]", "::ffff:10.0.0.1", id="v6-bracketed-mapped"),
    pytest.param("fe80::1%eth0", "fe80::1%eth0", id="v6-zone-id"),
    pytest.param("[fe80::1%eth0]", "fe80::1%eth0", id="v6-bracketed-zone-id"),
    pytest.param("fe80::1%25eth0", "fe80::1%25eth0", id="v6-url-encoded-zone-id"),
    # inet_aton's numeric forms, all read without DNS
    pytest.param("2130706433", "127.0.0.1", id="decimal"),
    pytest.param("017700000001", "127.0.0.1", id="octal-whole"),
    pytest.param("0x7f000001", "127.0.0.1", id="hex-whole"),
    pytest.param("0177.0.0.1", "127.0.0.1", id="octal-part"),
    pytest.param("0x7f.1", "127.0.0.1", id="hex-short"),
    pytest.param("0X7F.0.0.01", "127.0.0.1", id="hex-upper-and-octal"),
    pytest.param("127.1", "127.0.0.1", id="short-2"),
    pytest.param("127.0.1", "127.0.0.1", id="short-3"),
    pytest.param("10.65535", "10.0.255.255", id="short-last-fills-two-bytes"),
    pytest.param("0", "0.0.0.0", id="zero"),
    pytest.param("2852039166", "169.254.169.254", id="decimal-metadata"),
    pytest.param("0xa9fea9fe", "169.254.169.254", id="hex-metadata"),
    pytest.param("134744072", "8.8.8.8", id="decimal-public"),
    pytest.param("127.0.0.1.", "127.0.0.1", id="trailing-dot"),
    pytest.param("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1", id="fullwidth-digits"),
    pytest.param("127\u30020\u30020\u30021", "127.0.0.1", id="ideographic-dots"),
    # names
    pytest.param("example.com", None, id="name"),
    pytest.param("localhost", None, id="localhost"),
    pytest.param("hooks.example.com.", None, id="name-trailing-dot"),
    pytest.param("xn--bcher-kva.example", None, id="idna-name"),
    pytest.param("1.2.3.4.nip.io", None, id="name-embedding-an-address"),
    pytest.param("", None, id="empty"),
    pytest.param("[]", None, id="empty-brackets"),
    pytest.param("08.0.0.1", None, id="bad-octal"),
    pytest.param("1.2.3.4.5", None, id="five-parts"),
    pytest.param("4294967296", None, id="over-32-bits"),
    pytest.param("256.1", None, id="leading-part-over-a-byte"),
    pytest.param("1.16777216", None, id="last-part-over-its-bytes"),
    pytest.param("0x", None, id="hex-without-digits"),
    pytest.param("1..2", None, id="empty-part"),
    pytest.param("127.0.0.1..", None, id="two-trailing-dots"),
    pytest.param("1e1", None, id="not-a-number"),
    pytest.param("\u0661\u0662\u0667.0.0.1", None, id="arabic-indic-digits"),
]


@pytest.mark.parametrize(("host", "expected"), LITERALS)
def test_literal_address(host: str, expected: str | None) -> None:
    assert literal_address(host) == expected


@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
@example("0x7f.1")
@example("00000000000000000000000000177.1")
def test_numeric_hosts_read_as_the_c_library_reads_them(host: str) -> None:
    """The same answer as the resolver's own inet_aton, for every host it could be given."""
    try:
        expected: str | None = socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        expected = None
    if host.endswith(".") and not host.endswith(".."):
        return  # read as numeric here on purpose (see numeric_ipv4), a name to glibc
    found = numeric_ipv4(host)
    assert (None if found is None else str(found)) == expected


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        pytest.param("http://[::1]/hook", True, id="bracketed-loopback"),
        pytest.param("http://[fe80::1%25eth0]/hook", True, id="bracketed-link-local-zone"),
        pytest.param("http://[::ffff:10.0.0.1]/hook", True, id="bracketed-mapped-private"),
        pytest.param("http://[::127.0.0.1]/hook", True, id="compatible-loopback"),
        pytest.param("http://[::ffff:0:7f00:1]/hook", True, id="siit-loopback"),
        pytest.param("http://[64:ff9b:1::1]/hook", True, id="local-use-nat64"),
        pytest.param("http://[fec0::1]/hook", True, id="site-local"),
        pytest.param("http://169.254.169.254/latest/meta-data/", True, id="metadata"),
        pytest.param("http://168.63.129.16/", True, id="azure-metadata"),
        pytest.param("http://2130706433/hook", True, id="decimal-loopback"),
        pytest.param("http://0177.0.0.1/hook", True, id="octal-loopback"),
        pytest.param("http://0x7f.1/hook", True, id="hex-loopback"),
        pytest.param("http://127.1/hook", True, id="short-loopback"),
        pytest.param("http://0xA9FEA9FE/", True, id="hex-metadata"),
        pytest.param("http://LOCALHOST./hook", True, id="localhost-trailing-dot"),
        pytest.param("http://api.localhost/hook", True, id="localhost-subdomain"),
        pytest.param("http://[2606:4700::1111]/hook", False, id="bracketed-public"),
        pytest.param("https://8.8.8.8/hook", False, id="public"),
        pytest.param("https://134744072/hook", False, id="decimal-public"),
    ],
)
async def test_check_url(url: str, refused: bool) -> None:
    guard = AddressGuard(allow_private=False)
    if refused:
        with pytest.raises(Blocked):
            await guard.check_url(url)
    else:
        await guard.check_url(url)
    await AddressGuard(allow_private=True).check_url(url)  # allowed: everything passes


@pytest.mark.parametrize("address", ["10.1.2.3", "::ffff:127.0.0.1", "fd00:ec2::254"])
def test_a_refusal_never_names_the_resolved_address(address: str) -> None:
    with pytest.raises(Blocked) as caught:
        AddressGuard(allow_private=False).check_addresses("hooks.example", ["8.8.8.8", address])
    assert str(caught.value) == "hooks.example resolves to a non-public address"
    assert address not in str(caught.value)


def test_every_address_must_be_public() -> None:
    guard = AddressGuard(allow_private=False)
    guard.check_addresses("hooks.example", ["8.8.8.8", "2606:4700::1111"])
    with pytest.raises(Blocked):
        guard.check_addresses("hooks.example", ["8.8.8.8", "127.0.0.1"])
    AddressGuard(allow_private=True).check_addresses("hooks.example", ["127.0.0.1"])
