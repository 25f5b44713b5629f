"""The pure pieces that spread a batch over the shards, table-wise."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import pytest

from relay.store import keys
from relay.store.shards import claim_over_shards, grouped, round_robin, split


@pytest.mark.parametrize(
    ("total", "parts", "start", "expected"),
    [
        (0, [0, 1, 2], 0, {}),
        (5, [], 0, {}),
        (6, [0, 1, 2], 0, {0: 2, 1: 2, 2: 2}),
        (7, [0, 1, 2], 0, {0: 3, 1: 2, 2: 2}),
        (7, [0, 1, 2], 1, {1: 3, 2: 2, 0: 2}),
        (2, [0, 1, 2], 2, {2: 1, 0: 1}),  # a part with no share is left out
        (2, [4, 9], 5, {9: 1, 4: 1}),
    ],
)
def test_split_shares_evenly_and_rotates_the_remainder(
    total: int, parts: list[int], start: int, expected: dict[int, int]
) -> None:
    shares = split(total, parts, start)
    assert shares == expected and list(shares) == list(expected)
    assert sum(shares.values()) == (total if parts else 0)


@pytest.mark.parametrize(
    ("by_tenant", "count", "turn", "expected"),
    [
        ({}, 5, 0, []),
        ({"a": [1, 2, 3], "b": [10]}, 3, 0, [1, 10, 2]),
        ({"a": [1, 2, 3], "b": [10]}, 3, 1, [10, 1, 2]),
        ({"a": [1, 2], "b": [10, 11]}, 10, 0, [1, 10, 2, 11]),
        ({"a": [1, 2], "b": [10, 11], "c": []}, 3, 2, [1, 10, 2]),
    ],
)
def test_round_robin_takes_one_of_each_tenant_in_turn(
    by_tenant: dict[str, list[int]], count: int, turn: int, expected: list[int]
) -> None:
    assert round_robin(by_tenant, count, turn) == expected


def test_grouped_keeps_first_seen_order() -> None:
    assert grouped([3, 1, 4, 1, 5, 9, 2, 6], lambda n: n % 3) == [
        (0, [3, 9, 6]),
        (1, [1, 4, 1]),
        (2, [5, 2]),
    ]


async def test_claim_over_shards_gives_what_is_left_to_the_shards_that_had_more() -> None:
    stock = {shard: (10 if shard == 3 else 1) for shard in range(keys.SHARDS)}
    asked: list[dict[int, int]] = []

    async def take(shares: dict[int, int]) -> list[tuple[list[int], bool]]:
        asked.append(dict(shares))
        answers = []
        for shard, n in shares.items():
            got = min(n, stock[shard])
            stock[shard] -= got
            answers.append(([shard] * got, stock[shard] > 0))
        return answers

    claimed, more = await claim_over_shards(2 * keys.SHARDS, itertools.count(), take)
    assert len(asked) == 2
    assert asked[0] == dict.fromkeys(range(keys.SHARDS), 2)
    assert asked[1] == {3: 2 * keys.SHARDS - (keys.SHARDS - 1) - 2}
    assert claimed.count(3) == 10 and len(claimed) == keys.SHARDS - 1 + 10
    assert more is False


Take = Callable[[dict[int, int]], Awaitable[list[tuple[list[int], bool]]]]


def stocked(stock: dict[int, int], asked: list[dict[int, int]]) -> Take:
    """A `claim` taking from `stock` (shard -> items left), noting each round's shares."""

    async def take(shares: dict[int, int]) -> list[tuple[list[int], bool]]:
        asked.append(dict(shares))
        answers = []
        for shard, n in shares.items():
            got = min(n, stock.get(shard, 0))
            stock[shard] = stock.get(shard, 0) - got
            answers.append(([shard] * got, stock[shard] > 0))
        return answers

    return take


async def test_a_large_claim_asks_few_shards_each_for_a_large_share_in_turn() -> None:
    stock = dict.fromkeys(range(keys.SHARDS), 1000)
    asked: list[dict[int, int]] = []
    turns = itertools.count()
    firsts = []
    for _ in range(keys.SHARDS // 3 + 1):
        claimed, more = await claim_over_shards(100, turns, stocked(stock, asked), None, 32)
        assert len(claimed) == 100 and more is True
        firsts.append(asked[-1])
        assert len(asked[-1]) == 3 and sorted(asked[-1].values()) == [33, 33, 34]
    # One round each (every share was taken whole), and every shard had its turn.
    assert len(asked) == len(firsts)
    assert set().union(*firsts) == set(range(keys.SHARDS))


async def test_what_the_first_shards_lack_comes_from_the_others_named() -> None:
    stock = {2: 1, 5: 4, 9: 50}
    asked: list[dict[int, int]] = []
    claimed, more = await claim_over_shards(
        10, itertools.count(), stocked(stock, asked), [2, 5, 9], 32
    )
    assert asked[0] == {2: 10}  # one shard first: 10 is less than a share of 32
    assert set(asked[1]) == {5, 9} and sum(asked[1].values()) == 9
    # A third round takes from 9 what the even split of the second left.
    assert (claimed.count(2), claimed.count(5), claimed.count(9)) == (1, 4, 5)
    assert more is True  # 9 still had some


async def test_no_shard_named_claims_nothing() -> None:
    asked: list[dict[int, int]] = []
    assert await claim_over_shards(10, itertools.count(), stocked({}, asked), [], 32) == (
        [],
        False,
    )
    assert asked == []
