"""support.stats.percentile: nearest rank, the same in every test and benchmark."""

from __future__ import annotations

import math

import pytest

from support.stats import percentile

TEN = [float(v) for v in range(1, 11)]
HUNDRED = [float(v) for v in range(1, 101)]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([5.0], 0, 5.0, id="one-value-q0"),
        pytest.param([5.0], 50, 5.0, id="one-value-q50"),
        pytest.param([5.0], 100, 5.0, id="one-value-q100"),
        pytest.param(TEN, 0, 1.0, id="q0-is-the-smallest"),
        pytest.param(TEN, 10, 1.0, id="ten-q10"),
        pytest.param(TEN, 50, 5.0, id="ten-median-is-a-measured-value"),
        pytest.param(TEN, 51, 6.0, id="ten-just-past-the-middle"),
        pytest.param(TEN, 90, 9.0, id="ten-q90"),
        pytest.param(TEN, 95, 10.0, id="ten-q95-rounds-the-rank-up"),
        pytest.param(TEN, 100, 10.0, id="q100-is-the-largest"),
        pytest.param(HUNDRED, 95, 95.0, id="hundred-q95"),
        pytest.param(HUNDRED, 99, 99.0, id="hundred-q99"),
        pytest.param(HUNDRED, 99.5, 100.0, id="hundred-q99.5"),
        pytest.param([3.0, 1.0, 2.0], 50, 2.0, id="unsorted-input"),
        pytest.param([2.0, 2.0, 2.0, 9.0], 75, 2.0, id="ties"),
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_no_values_is_nan() -> None:
    assert math.isnan(percentile([], 50))


def test_the_input_is_left_as_it_was() -> None:
    values = [3.0, 1.0, 2.0]
    percentile(values, 50)
    assert values == [3.0, 1.0, 2.0]
