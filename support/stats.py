"""Figures over samples, the same maths in every test and benchmark."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (q from 0 to 100) by nearest rank; nan for no values.

    Nearest rank, not interpolation: the figure is always a value that was measured (a
    p99 of 31 ms is a request that took 31 ms): the smallest value with at least q % of
    the values at or below it.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
