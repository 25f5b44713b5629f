"""The breaker's scripts on a real Redis, with the clock in the test's hands: the shared
in-flight window, one probe at a time, holds that double, expiry while held."""

from __future__ import annotations

import dataclasses

from redis.asyncio import Redis

from relay.store import keys
from relay.store.breaker import (
    HOLD_AFTER,
    HOLD_START,
    PARK,
    WINDOW_START,
    Candidate,
    Receivers,
    Report,
    held_receivers,
)
from relay.store.redis import to_ms

ORIGIN = "https://hooks.example:443"
T0 = 1_800_000_000.0
TASK = "550e8400-e29b-41d4-a716-446655440000"  # the breaker never reads a task's record


def delivery(n: int) -> str:
    return keys.delivery_id(TASK, f"{n:08x}")


async def claimed(redis: Redis, count: int, now: float, *, first: int = 0) -> list[Candidate]:
    """Deliveries as a claim leaves them: due at their lease's end."""
    lease = to_ms(now + 15)
    found = []
    for n in range(first, first + count):
        did = delivery(n)
        await redis.zadd(keys.delivery_due(keys.delivery_shard(did)), {did: lease})
        found.append(Candidate(did, lease, "alpha", ORIGIN, created=to_ms(T0) + n))
    return found


async def due_at(redis: Redis, did: str) -> float:
    score = await redis.zscore(keys.delivery_due(keys.delivery_shard(did)), did)
    assert score is not None
    return score / 1000


async def test_the_window_is_shared_and_grows_with_successes(redis: Redis) -> None:
    breaker = Receivers(redis)
    first = await claimed(redis, 5, T0)
    answers = await breaker.admit(first, T0, span=60)
    assert answers == ["go"] * WINDOW_START + ["busy"] * (5 - WINDOW_START)
    # Another worker's claim to the same receiver finds the window full.
    other = await claimed(redis, 2, T0, first=5)
    assert await breaker.admit(other, T0, span=60) == ["busy", "busy"]
    for c in first[WINDOW_START:] + other:
        assert T0 + PARK <= await due_at(redis, c.delivery_id) < T0 + 2 * PARK  # parked
    # One success frees its slot and widens the window by one: two parked go out now.
    recorded = await breaker.record([Report(first[0], "up")], T0 + 0.1)
    assert recorded.released == 2
    released = [c for c in first[2:] + other if await due_at(redis, c.delivery_id) == T0 + 0.1]
    assert [c.delivery_id for c in released] == [delivery(2), delivery(3)]  # oldest first


async def test_failures_hold_then_one_probe_at_a_time(redis: Redis) -> None:
    breaker = Receivers(redis)
    now = T0
    failures = 0
    while failures < HOLD_AFTER:
        (c,) = await claimed(redis, 1, now, first=failures)
        assert await breaker.admit([c], now, span=600) == ["go"]
        recorded = await breaker.record([Report(c, "down")], now)
        failures += 1
        assert recorded.holds == (1 if failures == HOLD_AFTER else 0)
    assert len(await held_receivers(redis, "alpha", now)) == 1

    waiting = await claimed(redis, 3, now, first=10)
    assert await breaker.admit(waiting, now, span=600) == ["held"] * 3
    # The oldest comes back at the hold's end, as the probe; the others later.
    assert await due_at(redis, delivery(10)) == now + HOLD_START
    assert await due_at(redis, delivery(11)) > now + HOLD_START

    now += HOLD_START
    two_workers = await claimed(redis, 2, now, first=20)
    a = await breaker.admit(two_workers[:1], now, span=600)
    b = await breaker.admit(two_workers[1:], now, span=600)
    assert a + b == ["probe", "held"]
    recorded = await breaker.record([Report(two_workers[0], "down")], now + 0.5)
    assert (recorded.probes_down, recorded.holds) == (1, 0)
    # Held twice as long now; nothing goes before that.
    (early,) = await claimed(redis, 1, now + 1, first=30)
    assert await breaker.admit([early], now + 1, span=600) == ["held"]

    now += 0.5 + 2 * HOLD_START
    (probe,) = await claimed(redis, 1, now, first=40)
    assert await breaker.admit([probe], now, span=600) == ["probe"]
    recorded = await breaker.record([Report(probe, "up")], now + 0.1)
    assert recorded.probes_up == 1
    assert recorded.released == WINDOW_START  # the backlog ramps up from the window's start
    assert len(await held_receivers(redis, "alpha", now)) == 0


async def test_a_held_delivery_past_the_span_expires(redis: Redis) -> None:
    breaker = Receivers(redis)
    for n in range(HOLD_AFTER):
        (c,) = await claimed(redis, 1, T0, first=n)
        await breaker.admit([c], T0, span=5)
        await breaker.record([Report(c, "down")], T0)
    young, old = await claimed(redis, 2, T0, first=10)
    # Its series began before the span (a claim answers when: ClaimedDelivery).
    old = dataclasses.replace(old, created=to_ms(T0 - 6))
    assert await breaker.admit([young, old], T0, span=5) == ["held", "expired"]
    # Parked no later than its own span's end, to be ended failed on time.
    assert await due_at(redis, young.delivery_id) <= T0 + 5 + 0.01
    # The expired one keeps its claim: the deliverer ends it failed under that lease.
    assert await due_at(redis, old.delivery_id) == old.lease / 1000


async def test_hold_after_zero_never_holds(redis: Redis) -> None:
    breaker = Receivers(redis, hold_after=0)
    for n in range(3 * HOLD_AFTER):
        (c,) = await claimed(redis, 1, T0, first=n)
        assert await breaker.admit([c], T0, span=60) == ["go"]
        assert (await breaker.record([Report(c, "down")], T0)).holds == 0
    assert len(await held_receivers(redis, "alpha", T0)) == 0
