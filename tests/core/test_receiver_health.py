"""The breaker's pure parts: which receiver a URL names, what one attempt says of it,
and each tenant's share of a worker's delivery slots."""

from __future__ import annotations

import pytest

from relay.delivery.receivers import origin_of, verdict
from relay.delivery.shares import ACTIVE, FLOOR, TenantSlots, reserve, share


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://hooks.example/a", "https://hooks.example:443"),
        ("https://HOOKS.example:443/b?x=1", "https://hooks.example:443"),
        ("http://hooks.example/a", "http://hooks.example:80"),
        ("http://hooks.example:8080/a", "http://hooks.example:8080"),
        ("https://hooks.example:8443", "https://hooks.example:8443"),
        ("HTTP://127.0.0.1:9000/x", "http://127.0.0.1:9000"),
        ("http://[::1]:9000/x", "http://[::1]:9000"),
        ("https://user:pw@hooks.example/x", "https://hooks.example:443"),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    ("status_code", "error", "expected"),
    [
        (200, None, "up"),
        (204, None, "up"),
        (302, None, "up"),
        (400, None, "up"),
        (404, None, "up"),
        (410, None, "up"),
        (408, None, "down"),
        (429, None, "down"),
        (500, None, "down"),
        (503, None, "down"),
        (None, "timeout: no answer within 10 s", "down"),
        (None, "connect: cannot connect: refused", "down"),
        (None, "tls: certificate verify failed", "down"),
        (None, "protocol: ServerDisconnectedError", "down"),
        (None, "blocked: the address is not public", "none"),
        (None, None, "down"),
    ],
)
def test_verdict(status_code: int | None, error: str | None, expected: str) -> None:
    assert verdict(status_code, error) == expected


@pytest.mark.parametrize(
    ("slots", "tenants", "expected"),
    [
        (200, 0, 192),  # nobody yet: the first tenant's bound
        (200, 1, 192),  # a lone tenant: all but the reserve
        (200, 2, 96),
        (200, 3, 64),
        (200, 24, 8),
        (200, 25, FLOOR),  # 7 by division: the floor
        (200, 1000, FLOOR),
        (32, 1, 24),
        (32, 2, 12),
        (32, 5, FLOOR),
        (10, 1, 8),  # a small worker keeps a quarter free, at most
        (10, 3, 8),  # the floor is never more than a lone tenant gets
        (4, 2, 3),
        (3, 1, 3),  # no reserve below four slots
        (1, 1, 1),
        (1, 5, 1),
    ],
)
def test_share(slots: int, tenants: int, expected: int) -> None:
    assert share(slots, tenants) == expected


@pytest.mark.parametrize(("slots", "expected"), [(200, 8), (32, 8), (20, 5), (4, 1), (3, 0)])
def test_reserve(slots: int, expected: int) -> None:
    assert reserve(slots) == expected


def test_tenant_slots_count_who_has_work() -> None:
    slots = TenantSlots(200)
    assert slots.room(["a", "a", "b"], now=0.0) == {"a": 96, "b": 96}
    for _ in range(90):
        slots.started("a")
    assert slots.room(["a"], now=0.5) == {"a": 6}  # b was claimed half a second ago
    # b has had nothing claimed for longer than ACTIVE and nothing in flight: a is alone.
    assert slots.room(["a"], now=0.5 + ACTIVE + 0.1) == {"a": 102}
    assert slots.room(["b"], now=5.0) == {"b": 96}
    slots.started("b")
    assert slots.room(["a"], now=10.0) == {"a": 6}  # b's attempt, still in flight, counts
    slots.ended("b")
    assert slots.room(["a"], now=10.0) == {"a": 102}


def test_tenant_slots_release_what_the_share_allows() -> None:
    slots = TenantSlots(200)
    for _ in range(192):
        slots.started("a")
    assert slots.room(["a"], now=0.0) == {"a": 0}
    assert slots.releasable(now=0.0) == {}  # nothing parked
    slots.parked("a")
    assert slots.releasable(now=0.0) == {}  # still at its share
    for _ in range(3):
        slots.ended("a")
    assert slots.releasable(now=0.0) == {"a": 3}
    slots.drained(["a"])
    assert slots.releasable(now=0.0) == {}  # none left parked
    slots.parked("a")
    assert slots.releasable(now=0.0) == {"a": 3}
    # b comes with work: a's share halves, and a is over it again.
    assert slots.room(["b"], now=0.5) == {"b": 96}
    assert slots.releasable(now=0.5) == {}
    # b's work ends: a's share grows back, though none of a's attempts ended.
    assert slots.releasable(now=0.5 + ACTIVE + 0.1) == {"a": 3}
