"""Which addresses a webhook may connect to (relay.outbound.guard).

CONTRACT.md: unless RELAY_ALLOW_PRIVATE_WEBHOOKS=1, a webhook URL whose host is or resolves
to an address on loopback or a private network fails. Only globally reachable unicast
addresses are public; an address that merely embeds a private IPv4 address in an IPv6
form (mapped, NAT64, 6to4) is not public either.
"""

from __future__ import annotations

import pytest

from relay.outbound.guard import is_public_address, literal_address


@pytest.mark.parametrize(
    "address",
    [
        # IPv4 loopback, "this network", private
        pytest.param("127.0.0.1", id="v4-loopback"),
        pytest.param("127.255.255.254", id="v4-loopback-top"),
        pytest.param("0.0.0.0", id="v4-unspecified"),
        pytest.param("0.1.2.3", id="v4-this-network"),
        pytest.param("10.0.0.1", id="v4-10/8"),
        pytest.param("10.255.255.255", id="v4-10/8-top"),
        pytest.param("172.16.0.1", id="v4-172.16/12"),
        pytest.param("172.31.255.254", id="v4-172.16/12-top"),
        pytest.param("192.168.1.1", id="v4-192.168/16"),
        # link-local, cloud metadata
        pytest.param("169.254.0.1", id="v4-link-local"),
        pytest.param("169.254.169.254", id="v4-cloud-metadata"),
        # CGNAT shared address space 100.64.0.0/10
        pytest.param("100.64.0.1", id="v4-cgnat-bottom"),
        pytest.param("100.100.100.200", id="v4-cgnat-alibaba-metadata"),
        pytest.param("100.127.255.254", id="v4-cgnat-top"),
        # multicast, broadcast, reserved
        pytest.param("224.0.0.1", id="v4-multicast-all-hosts"),
        pytest.param("239.255.255.250", id="v4-multicast-ssdp"),
        pytest.param("255.255.255.255", id="v4-broadcast"),
        pytest.param("240.0.0.1", id="v4-reserved-240/4"),
        # documentation, benchmarking, IETF protocol assignments
        pytest.param("192.0.2.1", id="v4-doc-test-net-1"),
        pytest.param("198.51.100.7", id="v4-doc-test-net-2"),
        pytest.param("203.0.113.9", id="v4-doc-test-net-3"),
        pytest.param("198.18.0.1", id="v4-benchmarking"),
        pytest.param("192.0.0.1", id="v4-ietf-protocol"),
        # IPv6 loopback, unspecified, link-local, unique-local
        pytest.param("::1", id="v6-loopback"),
        pytest.param("::", id="v6-unspecified"),
        pytest.param("fe80::1", id="v6-link-local"),
        pytest.param("fe80::1%eth0", id="v6-link-local-zone-id"),
        pytest.param("fc00::1", id="v6-unique-local-fc"),
        pytest.param("fd12:3456:789a::1", id="v6-unique-local-fd"),
        pytest.param("fd00:ec2::254", id="v6-aws-metadata"),
        # IPv6 multicast
        pytest.param("ff02::1", id="v6-multicast-link"),
        pytest.param("ff0e::1", id="v6-multicast-global-scope"),
        # IPv6 documentation, discard
        pytest.param("2001:db8::1", id="v6-documentation"),
        pytest.param("100::1", id="v6-discard"),
        # IPv4-mapped IPv6 of non-public IPv4
        pytest.param("::ffff:10.0.0.1", id="v6-mapped-private"),
        pytest.param("::ffff:127.0.0.1", id="v6-mapped-loopback"),
        pytest.param("::ffff:169.254.169.254", id="v6-mapped-metadata"),
        pytest.param("::ffff:100.64.0.1", id="v6-mapped-cgnat"),
        pytest.param("::ffff:0.0.0.0", id="v6-mapped-unspecified"),
        pytest.param("::ffff:224.0.0.1", id="v6-mapped-multicast"),
        pytest.param("::ffff:a00:1", id="v6-mapped-private-hex-form"),
        # IPv6 forms that route to an embedded IPv4 address
        pytest.param("64:ff9b::10.0.0.1", id="v6-nat64-of-private"),
        pytest.param("64:ff9b::169.254.169.254", id="v6-nat64-of-metadata"),
        pytest.param("2002:a00:1::1", id="v6-6to4-of-private"),
        # not addresses at all
        pytest.param("", id="empty"),
        pytest.param("localhost", id="name-localhost"),
        pytest.param("example.com", id="name"),
        pytest.param("[::1]", id="bracketed-not-a-resolver-answer"),
        pytest.param("127.1", id="short-form-v4"),
        pytest.param("256.0.0.1", id="v4-out-of-range"),
    ],
)
def test_not_public(address: str) -> None:
    assert is_public_address(address) is False


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("8.8.8.8", id="google-dns"),
        pytest.param("1.1.1.1", id="cloudflare-dns"),
        pytest.param("93.184.215.14", id="v4-public"),
        pytest.param("100.63.255.255", id="v4-just-below-cgnat"),
        pytest.param("100.128.0.1", id="v4-just-above-cgnat"),
        pytest.param("172.15.255.255", id="v4-just-below-172.16/12"),
        pytest.param("172.32.0.1", id="v4-just-above-172.16/12"),
        pytest.param("11.0.0.1", id="v4-just-above-10/8"),
        pytest.param("2606:4700::1111", id="v6-cloudflare"),
        pytest.param("2001:4860:4860::8888", id="v6-google"),
        pytest.param("2a00:1450:4001:81b::200e", id="v6-public"),
        pytest.param("::ffff:8.8.8.8", id="v6-mapped-public"),
        pytest.param("64:ff9b::8.8.8.8", id="v6-nat64-of-public"),
    ],
)
def test_public(address: str) -> None:
    assert is_public_address(address) is True


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("1.2.3.4", "1.2.3.4", id="v4"),
        pytest.param("127.0.0.1", "127.0.0.1", id="v4-loopback"),
        pytest.param("::1", "::1", id="v6"),
        pytest.param("[::1]", "::1", id="v6-bracketed"),
        pytest.param("[2606:4700::1111]", "2606:4700::1111", id="v6-bracketed-public"),
        pytest.param("[::ffff:10.0.0.1]", "::ffff:10.0.0.1", id="v6-bracketed-mapped"),
        pytest.param("fe80::1%eth0", "fe80::1%eth0", id="v6-zone-id"),
        pytest.param("[fe80::1%eth0]", "fe80::1%eth0", id="v6-bracketed-zone-id"),
        pytest.param("fe80::1%25eth0", "fe80::1%25eth0", id="v6-url-encoded-zone-id"),
        pytest.param("example.com", None, id="name"),
        pytest.param("localhost", None, id="localhost"),
        pytest.param("hooks.example.com.", None, id="name-trailing-dot"),
        pytest.param("xn--bcher-kva.example", None, id="idna-name"),
        pytest.param("1.2.3.4.nip.io", None, id="name-embedding-an-address"),
        pytest.param("", None, id="empty"),
        pytest.param("[]", None, id="empty-brackets"),
        pytest.param("127.1", None, id="short-form-v4-is-a-name"),
        pytest.param("2130706433", None, id="integer-form-v4-is-a-name"),
    ],
)
def test_literal_address(host: str, expected: str | None) -> None:
    assert literal_address(host) == expected


@pytest.mark.parametrize(
    ("host", "public"),
    [
        pytest.param("[::1]", False, id="bracketed-loopback"),
        pytest.param("[fe80::1%eth0]", False, id="bracketed-link-local-zone"),
        pytest.param("[::ffff:10.0.0.1]", False, id="bracketed-mapped-private"),
        pytest.param("169.254.169.254", False, id="metadata"),
        pytest.param("[2606:4700::1111]", True, id="bracketed-public"),
        pytest.param("8.8.8.8", True, id="public"),
    ],
)
def test_literal_then_checked(host: str, public: bool) -> None:
    # What check_url does with a URL whose host is an address.
    literal = literal_address(host)
    assert literal is not None
    assert is_public_address(literal) is public
