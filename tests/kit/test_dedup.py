"""Deduplication on webhook-id: the protocol's behaviour with both stores, the in-memory
one's bounds and expiry, the Redis one's key and expiry (the test session's redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from relay_client.receiver import Deduplicator, MemoryDeduplicator
from relay_client.receiver.redis_store import RedisDeduplicator


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis: Redis) -> AsyncIterator[Deduplicator]:
    if request.param == "memory":
        yield MemoryDeduplicator()
    else:
        yield RedisDeduplicator(redis, prefix="test-dedup:")


async def test_an_id_is_claimed_once(store: Deduplicator) -> None:
    assert await store.claim("msg_1")
    assert not await store.claim("msg_1")
    assert await store.claim("msg_2")
    assert not await store.claim("msg_2")


async def test_a_released_id_is_claimed_again(store: Deduplicator) -> None:
    assert await store.claim("msg_1")
    await store.release("msg_1")
    assert await store.claim("msg_1")
    await store.release("never-claimed")


async def test_concurrent_claims_have_one_winner(store: Deduplicator) -> None:
    wins = await asyncio.gather(*(store.claim("msg_race") for _ in range(20)))
    assert wins.count(True) == 1


async def test_redis_keys_expire_after_the_ttl(redis: Redis) -> None:
    store = RedisDeduplicator(redis, prefix="ttl:", ttl=90)
    assert await store.claim("msg_1")
    assert 0 < await redis.pttl("ttl:msg_1") <= 90_000
    # A second claim does not push the expiry back.
    await redis.pexpire("ttl:msg_1", 5000)
    assert not await store.claim("msg_1")
    assert await redis.pttl("ttl:msg_1") <= 5000


async def test_two_receivers_on_one_redis_share_their_claims(redis: Redis) -> None:
    first, second = RedisDeduplicator(redis), RedisDeduplicator(redis)
    assert await first.claim("msg_shared")
    assert not await second.claim("msg_shared")


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (advance the clock by, claim this id) -> whether each claim won
        ([(0, "a"), (0, "a")], [True, False]),
        ([(0, "a"), (9.9, "a")], [True, False]),
        ([(0, "a"), (10, "a")], [True, True]),  # expired at exactly its ttl
        ([(0, "a"), (5, "b"), (6, "a"), (0, "b")], [True, True, True, False]),
        ([(0, "a"), (0, "b"), (0, "c"), (0, "d"), (0, "a")], [True, True, True, True, True]),
        ([(0, "a"), (0, "b"), (0, "c"), (0, "c")], [True, True, True, False]),
    ],
)
def test_memory_expiry_and_bound(steps: list[tuple[float, str]], expected: list[bool]) -> None:
    clock = Clock()
    store = MemoryDeduplicator(ttl=10, max_entries=3, clock=clock)
    results = []
    for advance, webhook_id in steps:
        clock.now += advance
        results.append(store.claim_now(webhook_id))
    assert results == expected
    assert len(store) <= 3


def test_memory_forgets_what_expired() -> None:
    clock = Clock()
    store = MemoryDeduplicator(ttl=10, clock=clock)
    for i in range(100):
        store.claim_now(f"msg_{i}")
    assert len(store) == 100
    clock.now += 10
    assert len(store) == 0


def test_memory_needs_room_for_one() -> None:
    with pytest.raises(ValueError):
        MemoryDeduplicator(max_entries=0)
