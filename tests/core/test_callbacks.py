"""The upstream's callbacks and the poll that follows a fetch: `relay.core.callbacks`."""

from __future__ import annotations

import pytest

from relay.core.callbacks import SIGNALS, follow_up
from relay.core.lifecycle import Step
from relay.core.model import TaskState
from relay.core.schedule import PollPolicy

POLICY = PollPolicy(min_interval=5.0, max_interval=120.0, failed_grace=30.0)
BEFORE = TaskState(registered_at=0.0, deadline_at=9e9, status="running", updated_at=10.0)
SAME = BEFORE  # a fetch that taught nothing new: updated_at unchanged
CHANGED = TaskState(registered_at=0.0, deadline_at=9e9, status="running", updated_at=20.0)
HELD = TaskState(
    registered_at=0.0, deadline_at=9e9, status="running", updated_at=20.0, failed_since=20.0
)


@pytest.mark.parametrize(
    ("after", "delay", "signals", "calls_back", "expected"),
    [
        # No callback pending, polled as usual: the schedule's delay stands.
        (SAME, 7.0, 0, False, (7.0, None)),
        (CHANGED, 7.0, 0, False, (7.0, None)),
        # Every registration says the upstream calls back: a safety net every max interval.
        (SAME, 7.0, 0, True, (120.0, None)),
        (CHANGED, 300.0, 0, True, (300.0, None)),  # a longer wait (Retry-After) stands
        # ... but the failed grace keeps its own timing.
        (HELD, 30.0, 0, True, (30.0, None)),
        # A callback's fetch that still answered the old state: again soon, a little
        # later each time: 1, 2, 4 s at a 5 s minimum interval.
        (SAME, 7.0, SIGNALS, False, (1.0, SIGNALS - 1)),
        (SAME, 7.0, 2, True, (2.0, 1)),
        (SAME, 7.0, 1, True, (4.0, 0)),
        # The fetch brought news: the repeats end and the schedule takes over.
        (CHANGED, 7.0, 2, False, (7.0, 0)),
        (CHANGED, 7.0, 2, True, (120.0, 0)),
    ],
)
def test_follow_up(
    after: TaskState,
    delay: float,
    signals: int,
    calls_back: bool,
    expected: tuple[float, int | None],
) -> None:
    step = Step(after, None, delay)
    assert follow_up(BEFORE, step, POLICY, signals=signals, calls_back=calls_back) == expected


@pytest.mark.parametrize("signals", [0, 2])
def test_a_final_step_has_no_next_poll(signals: int) -> None:
    final = TaskState(registered_at=0.0, deadline_at=9e9, status="succeeded", updated_at=20.0)
    delay, left = follow_up(
        BEFORE, Step(final, "task.succeeded", None), POLICY, signals=signals, calls_back=True
    )
    assert delay is None
    assert left == (0 if signals else None)


def test_repeats_scale_with_the_minimum_interval() -> None:
    fast = PollPolicy(min_interval=0.5, max_interval=2.0)
    step = Step(SAME, None, 0.5)
    assert follow_up(BEFORE, step, fast, signals=SIGNALS, calls_back=True) == (0.1, SIGNALS - 1)
