"""The pure pieces that spread a batch over the shards, table-wise."""

from __future__ import annotations

import itertools

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
