"""How a batch is spread over the shards, and items grouped by the key they go with."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Sequence
from typing import TypeVar

from relay.store import keys
from relay.store.redis import Client

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

ROUNDS = 3  # of claims over the shards, at most, for one batch


def split(total: int, parts: list[int], start: int) -> dict[int, int]:
    """`total` shared as evenly as can be among `parts`, the remainder going to the
    parts from `start` on (a rotating start spreads it over turns). Pure."""
    if not parts or total <= 0:
        return {}
    base, extra = divmod(total, len(parts))
    shares = {}
    for offset, part in enumerate(parts[start % len(parts) :] + parts[: start % len(parts)]):
        share = base + (1 if offset < extra else 0)
        if share:
            shares[part] = share
    return shares


async def claim_over_shards(
    total: int,
    turns: Iterator[int],
    claim: Callable[[dict[int, int]], Awaitable[list[tuple[list[T], bool]]]],
    shards: Sequence[int] | None = None,
    min_share: int = 1,
) -> tuple[list[T], bool]:
    """Up to `total` items from the `shards` that may have some (by default every one).
    First from as many of them as each get a share of at least `min_share` (taken from
    a rotating start, so each has its turn), then what is left from the ones that had
    more and the ones not asked yet, then from those that still had more (three
    rounds at most: each is a round trip). `claim(shares)` takes `shares[shard]` items of
    each shard named and answers, in that order, what each gave and whether it had
    more. Returns the items and whether a shard may still have more."""
    pending = list(range(keys.SHARDS)) if shards is None else list(shards)
    if not pending or total <= 0:
        return [], bool(pending)
    start = next(turns) % len(pending)
    pending = pending[start:] + pending[:start]
    claimed: list[T] = []
    left, asking = total, max(1, total // min_share)
    for _ in range(ROUNDS):
        shares = split(left, pending[:asking], next(turns))
        if not shares:
            break
        fuller = []
        for shard, (found, had_more) in zip(shares, await claim(shares), strict=True):
            claimed += found
            left -= len(found)
            if had_more:
                fuller.append(shard)
        pending = fuller + [shard for shard in pending if shard not in shares]
        asking = len(pending)
    return claimed, bool(pending)


def round_robin(by_tenant: dict[str, list[T]], count: int, turn: int) -> list[T]:
    """Up to `count` items, one of each tenant's in turn (tenants in name order, from a
    rotating start), each tenant's in the order given. Pure."""
    tenants = sorted(by_tenant)
    if not tenants:
        return []
    tenants = tenants[turn % len(tenants) :] + tenants[: turn % len(tenants)]
    chosen: list[T] = []
    depth = 0
    while len(chosen) < count:
        took = False
        for tenant in tenants:
            items = by_tenant[tenant]
            if depth < len(items):
                chosen.append(items[depth])
                took = True
                if len(chosen) == count:
                    break
        if not took:
            break
        depth += 1
    return chosen


def grouped(items: Iterable[T], key: Callable[[T], K]) -> list[tuple[K, list[T]]]:
    """The items by `key`, in the order each key first comes, each group in order."""
    groups: defaultdict[K, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return list(groups.items())


def claimed_ids(shards: list[int], replies: list[object]) -> list[tuple[int, int, list[str]]]:
    """(shard, lease, ids) of each shard's claim: the claim scripts answer
    {lease, {id, ...}, ...}, or nothing when they took none."""
    taken: list[tuple[int, int, list[str]]] = []
    for shard, reply in zip(shards, replies, strict=True):
        if not isinstance(reply, list) or not reply:
            taken.append((shard, 0, []))
            continue
        ids = reply[1]
        assert isinstance(ids, list)
        taken.append((shard, int(str(reply[0])), [str(i) for i in ids]))
    return taken


async def due_shards(redis: Client, queue: Callable[[int], str], now_ms: int) -> list[int]:
    """The shards whose `queue(shard)` (a sorted set by due time) has something due."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(keys.SHARDS):
            pipe.zcount(queue(shard), "-inf", now_ms)
        counts = await pipe.execute()
    return [shard for shard, count in enumerate(counts) if int(count)]


async def drop_from_queue(
    redis: Client, queue: Callable[[int], str], entries: list[tuple[int, str]]
) -> None:
    """Take (shard, member) entries out of a per-shard queue whose records are gone."""
    if not entries:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for shard, members in grouped(entries, lambda e: e[0]):
            pipe.zrem(queue(shard), *(member for _, member in members))
        await pipe.execute()
