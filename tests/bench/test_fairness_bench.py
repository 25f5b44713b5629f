"""The fairness benchmark's pure parts: first-poll delays, call counts, the busiest second."""

from __future__ import annotations

import math

import pytest

from bench.fairness import (
    calls_between,
    due_per_tenant,
    first_poll_delays,
    most_in_window,
    queue_wait,
)

POLLS = {"b1": [10.5, 15.5], "b2": [12.0], "a1": [9.0, 10.0, 11.0], "a2": [10.9]}


@pytest.mark.parametrize(
    ("ids", "registered_at", "expected"),
    [
        (["b1", "b2"], 10.0, [0.5, 2.0]),
        (["late"], 0.0, [math.inf]),  # never called
        ([], 10.0, []),
    ],
)
def test_first_poll_delays(ids: list[str], registered_at: float, expected: list[float]) -> None:
    assert first_poll_delays(POLLS, ids, registered_at) == expected


def test_first_poll_delay_is_the_earliest_call_in_any_order() -> None:
    assert first_poll_delays({"t": [3.0, 1.5, 2.0]}, ["t"], 1.0) == [0.5]


@pytest.mark.parametrize(
    ("ids", "start", "end", "expected"),
    [
        (["a1", "a2"], 10.0, 11.0, 2),  # start included, end not
        (["a1", "a2"], 0.0, 100.0, 4),
        (["a1", "missing"], 9.5, 10.5, 1),
        ([], 0.0, 100.0, 0),
    ],
)
def test_calls_between(ids: list[str], start: float, end: float, expected: int) -> None:
    assert calls_between(POLLS, ids, start, end) == expected


@pytest.mark.parametrize(
    ("times", "width", "expected"),
    [
        ([], 1.0, 0),
        ([5.0], 1.0, 1),
        ([0.0, 0.5, 0.99, 1.0, 1.2], 1.0, 4),  # [0.5, 1.5) holds four; t + width is out
        ([3.0, 0.0, 2.5, 2.9, 0.1], 1.0, 3),
        ([0.0, 1.0, 2.0], 1.0, 1),
    ],
)
def test_most_in_window(times: list[float], width: float, expected: int) -> None:
    assert most_in_window(times, width) == expected


@pytest.mark.parametrize(
    ("ahead", "rate", "expected"),
    [(4900, 49.0, 100.0), (0, 50.0, 0.0), (10, 0.0, math.inf)],
)
def test_queue_wait(ahead: int, rate: float, expected: float) -> None:
    assert queue_wait(ahead, rate) == expected


def test_due_per_tenant_reads_only_its_metric() -> None:
    exposition = (
        "# HELP relay_tenant_due_tasks Due tasks per tenant.\n"
        "# TYPE relay_tenant_due_tasks gauge\n"
        'relay_tenant_due_tasks{tenant="tenant-a"} 4887.0\n'
        'relay_tenant_due_tasks{tenant="tenant-b"} 10.0\n'
        "# TYPE relay_due_tasks gauge\n"
        "relay_due_tasks 4897.0\n"
    )
    assert due_per_tenant(exposition) == {"tenant-a": 4887.0, "tenant-b": 10.0}
    assert due_per_tenant("") == {}
