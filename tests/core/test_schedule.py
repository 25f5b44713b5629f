"""Table tests and properties of the poll schedule (relay.core.schedule).

Expectations follow shared/CONTRACT.md (RELAY_POLL_MIN_INTERVAL / MAX_INTERVAL bound every
delay) and shared/upstream/NOTES.md (typical durations per task type, long queue waits).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.core.model import Result, TaskState
from relay.core.schedule import (
    AFTER,
    PollPolicy,
    Window,
    backoff,
    clamp,
    estimate_remaining,
    estimate_window,
    is_waiting,
    next_delay,
    typical_duration,
    typical_range,
)

NOW = 1_764_410_400.0  # 2025-11-29T10:00:00Z
POLICY = PollPolicy(min_interval=5.0, max_interval=120.0, failed_grace=30.0)
WIDE = PollPolicy(min_interval=5.0, max_interval=600.0, failed_grace=30.0)


def state(**fields: Any) -> TaskState:
    """A task registered 10 minutes ago, with the given fields."""
    base: dict[str, Any] = {"registered_at": NOW - 600, "deadline_at": NOW + 3600}
    base.update(fields)
    return TaskState(**base)


def running(type_: str | None = "imagine", **fields: Any) -> TaskState:
    fields.setdefault("upstream_status", "processing")
    return state(status="running", task_type=type_, **fields)


# --- typical_duration -------------------------------------------------------------------------
# The ranges are the upstream's notes; the estimate must fall inside them.


@pytest.mark.parametrize(
    ("task_type", "low", "high"),
    [
        pytest.param("seed", 5, 15, id="seed"),
        pytest.param("describe", 10, 30, id="describe"),
        pytest.param("shorten", 10, 30, id="shorten"),
        pytest.param("upscale#1", 15, 45, id="upscale#1"),
        pytest.param("upscale-2x", 15, 45, id="upscale-2x"),
        pytest.param("upscale-creative", 15, 45, id="upscale-creative"),
        pytest.param("faceswap", 15, 45, id="faceswap"),
        pytest.param("imagine", 30, 90, id="imagine"),
        pytest.param("reroll", 30, 90, id="reroll"),
        pytest.param("variation-1", 30, 90, id="variation-1"),
        pytest.param("variation-strong", 30, 90, id="variation-strong"),
        pytest.param("blend", 30, 90, id="blend"),
        pytest.param("inpaint", 30, 90, id="inpaint"),
        pytest.param("imagine-video", 60, 300, id="imagine-video"),
        pytest.param("imagine-video-extend", 60, 300, id="imagine-video-extend"),
        pytest.param("IMAGINE-VIDEO", 60, 300, id="video-upper-case"),
        pytest.param("Upscale#2", 15, 45, id="upscale-mixed-case"),
    ],
)
def test_typical_duration_within_the_notes(task_type: str, low: float, high: float) -> None:
    assert low <= typical_duration(task_type) <= high


@pytest.mark.parametrize(
    "task_type",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("brand-new-endpoint", id="unknown"),
        pytest.param("zoom-out-2x", id="unknown-zoom"),
        pytest.param("\u2603", id="unknown-unicode"),
    ],
)
def test_typical_duration_unknown_types_get_the_default(task_type: str | None) -> None:
    # Never a closed list of types: anything unknown gets a finite, imagine-like default.
    assert typical_duration(task_type) == typical_duration("imagine")
    assert 0 < typical_duration(task_type) < math.inf


# --- clamp ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        pytest.param(0.0, 5.0, id="zero-to-min"),
        pytest.param(-100.0, 5.0, id="negative-to-min"),
        pytest.param(4.999, 5.0, id="just-below-min"),
        pytest.param(5.0, 5.0, id="min"),
        pytest.param(42.5, 42.5, id="inside"),
        pytest.param(120.0, 120.0, id="max"),
        pytest.param(120.001, 120.0, id="just-above-max"),
        pytest.param(1e12, 120.0, id="huge-to-max"),
        pytest.param(math.inf, 120.0, id="inf-to-max"),
        pytest.param(-math.inf, 5.0, id="minus-inf-to-min"),
        pytest.param(math.nan, 5.0, id="nan-to-min"),
    ],
)
def test_clamp(delay: float, expected: float) -> None:
    assert clamp(delay, POLICY) == expected


# --- backoff ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "policy", "expected"),
    [
        pytest.param(0, POLICY, 5.0, id="zero-attempts-min"),
        pytest.param(-3, POLICY, 5.0, id="negative-attempts-min"),
        pytest.param(1, POLICY, 5.0, id="first"),
        pytest.param(2, POLICY, 10.0, id="second-doubles"),
        pytest.param(3, POLICY, 20.0, id="third"),
        pytest.param(4, POLICY, 40.0, id="fourth"),
        pytest.param(5, POLICY, 80.0, id="fifth"),
        pytest.param(6, POLICY, 120.0, id="sixth-capped-at-max"),
        pytest.param(50, POLICY, 120.0, id="many-capped"),
        pytest.param(10**9, POLICY, 120.0, id="absurd-count-capped"),
        pytest.param(1, PollPolicy(0.5, 2.0), 0.5, id="fractional-first"),
        pytest.param(3, PollPolicy(0.5, 2.0), 2.0, id="fractional-capped"),
        pytest.param(7, PollPolicy(5.0, 5.0), 5.0, id="min-equals-max"),
    ],
)
def test_backoff(attempt: int, policy: PollPolicy, expected: float) -> None:
    assert backoff(attempt, policy) == pytest.approx(expected)


def test_backoff_grows_then_stays_at_max() -> None:
    delays = [backoff(n, POLICY) for n in range(1, 30)]
    assert delays == sorted(delays)
    assert delays[0] == POLICY.min_interval
    assert delays[-1] == POLICY.max_interval


# --- typical_range and is_waiting ------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_type", "expected"),
    [
        pytest.param("seed", (5.0, 15.0), id="seed"),
        pytest.param("describe", (10.0, 30.0), id="describe"),
        pytest.param("shorten", (10.0, 30.0), id="shorten"),
        pytest.param("upscale-creative", (15.0, 45.0), id="upscale"),
        pytest.param("faceswap", (15.0, 45.0), id="faceswap"),
        pytest.param("variation-strong", (30.0, 90.0), id="variation"),
        pytest.param("imagine-video-extend", (60.0, 300.0), id="video"),
        pytest.param(None, (30.0, 90.0), id="unknown-imagine-like"),
    ],
)
def test_typical_range_is_the_notes(task_type: str | None, expected: tuple[float, float]) -> None:
    assert typical_range(task_type) == expected
    assert typical_duration(task_type) == sum(expected) / 2


@pytest.mark.parametrize(
    ("task", "waiting"),
    [
        pytest.param(state(), True, id="never-answered"),
        pytest.param(state(upstream_status="staged"), True, id="staged"),
        pytest.param(state(upstream_status="pending"), True, id="pending"),
        pytest.param(running(upstream_status="starting"), True, id="starting"),
        pytest.param(running(upstream_status=" Starting "), True, id="starting-spelled-oddly"),
        pytest.param(running(upstream_status="processing"), False, id="processing"),
        pytest.param(running(upstream_status="retrying"), False, id="unknown-word-runs"),
        pytest.param(running(upstream_status=None), False, id="running-word-unknown"),
    ],
)
def test_is_waiting(task: TaskState, waiting: bool) -> None:
    assert is_waiting(task) is waiting


# --- estimate_window / estimate_remaining ------------------------------------------------------
# A rate window: readings are rounded down, so the true movement is within one point of the
# measured one and the true progress up to one point above the last reading; a further 6 % of
# the time left allows for uneven progress. Without a rate, the type's typical range says.


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        pytest.param(running(), None, id="nothing-known"),
        pytest.param(state(status_since=NOW - 30), None, id="queued"),
        pytest.param(
            running(upstream_status="starting", status_since=NOW), None, id="starting-waits"
        ),
        # no percentage: the typical range from when processing was first seen, less a
        # quarter of the shortest for the start nobody saw
        pytest.param(running(status_since=NOW), Window(22.5, 82.5), id="no-pct-imagine"),
        pytest.param(running(status_since=NOW - 20), Window(2.5, 62.5), id="no-pct-20s"),
        pytest.param(
            running("imagine-video", status_since=NOW - 60),
            Window(-15.0, 225.0),
            id="no-pct-video-60s",
        ),
        # one reading while processing: its share left of the typical range
        pytest.param(
            running(progress=20, progress_at=NOW, status_since=NOW),
            Window(24.0, 72.0),
            id="one-reading-20",
        ),
        pytest.param(
            running(progress=0, progress_at=NOW - 100, status_since=NOW - 10),
            Window(20.0, 80.0),
            id="queue-zero-counts-from-processing",
        ),
        pytest.param(
            running(
                progress=40,
                progress_at=NOW,
                prev_progress=50,
                prev_progress_at=NOW - 10,
                status_since=NOW - 30,
            ),
            Window(18.0, 54.0),
            id="progress-went-back-one-reading",
        ),
        pytest.param(
            running(progress=100, progress_at=NOW - 5, status_since=NOW - 20),
            Window(-5.0, -5.0),
            id="at-100-not-finished",
        ),
        # two readings: 20 -> 40 in 20 s
        pytest.param(
            running(
                progress=40,
                progress_at=NOW,
                prev_progress=20,
                prev_progress_at=NOW - 20,
                status_since=NOW - 30,
            ),
            Window(59 * 20 / 21 * 0.94, 60 * 20 / 19 * 1.06, 1.0, 20.0),
            id="rate-two-readings",
        ),
        pytest.param(
            running(
                progress=40,
                progress_at=NOW - 5,
                prev_progress=20,
                prev_progress_at=NOW - 25,
                status_since=NOW - 30,
            ),
            Window(59 * 20 / 21 * 0.94 - 5, 60 * 20 / 19 * 1.06 - 5, 1.0, 20.0),
            id="rate-two-readings-5s-later",
        ),
        pytest.param(
            running(
                progress=10,
                progress_at=NOW,
                prev_progress=0,
                prev_progress_at=NOW - 100,
                status_since=NOW - 30,
            ),
            Window(89 * 30 / 11 * 0.94, 90 * 30 / 9 * 1.06, 3.0, 30.0),
            id="queue-reading-counts-from-processing",
        ),
        pytest.param(
            running(
                progress=50,
                progress_at=NOW,
                prev_progress=10,
                prev_progress_at=NOW - 20,
                status_since=NOW - 40,
            ),
            Window(49 * 20 / 41 * 0.94, 50 * 20 / 39 * 1.06, 0.5, 20.0, steady=False),
            id="speeding-up",
        ),
        pytest.param(
            running(
                progress=50,
                progress_at=NOW,
                prev_progress=10,
                prev_progress_at=NOW - 20,
                status_since=NOW - 25,
            ),
            Window(49 * 20 / 41 * 0.94, 50 * 20 / 39 * 1.06, 0.5, 20.0),
            id="as-fast-as-before-steady",
        ),
        pytest.param(
            running(progress=30, progress_at=NOW, prev_progress=30, prev_progress_at=NOW),
            None,
            id="no-processing-start-nothing-known",
        ),
    ],
)
def test_estimate_window(task: TaskState, expected: Window | None) -> None:
    got = estimate_window(task, NOW)
    if expected is None:
        assert got is None
        assert estimate_remaining(task, NOW) is None
        return
    assert got is not None
    assert got.earliest == pytest.approx(expected.earliest)
    assert got.latest == pytest.approx(expected.latest)
    assert got.point == pytest.approx(expected.point)
    assert got.baseline == pytest.approx(expected.baseline)
    assert got.steady is expected.steady
    assert estimate_remaining(task, NOW) == pytest.approx((got.earliest + got.latest) / 2)


# --- next_delay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "policy", "expected"),
    [
        # waiting: the next poll after as long as the task has waited, but never later than
        # the shortest typical duration of its type (a task leaving the queue is seen running)
        pytest.param(state(), POLICY, 5.0, id="queued-never-seen"),
        pytest.param(state(status_since=NOW), POLICY, 5.0, id="queued-just-now"),
        pytest.param(state(status_since=NOW - 8), POLICY, 8.0, id="queued-8s"),
        pytest.param(state(status_since=NOW - 20), POLICY, 20.0, id="queued-20s"),
        pytest.param(state(status_since=NOW - 100), POLICY, 30.0, id="queued-100s-imagine-cap"),
        pytest.param(state(status_since=NOW - 3600), POLICY, 30.0, id="queued-hour-imagine-cap"),
        pytest.param(
            state(task_type="imagine-video", status_since=NOW - 600),
            POLICY,
            60.0,
            id="queued-relax-video-cap",
        ),
        pytest.param(
            state(task_type="imagine-video", status_since=NOW - 3600),
            WIDE,
            60.0,
            id="queued-video-cap-wide-max",
        ),
        pytest.param(
            state(task_type="upscale#2", status_since=NOW - 600),
            POLICY,
            15.0,
            id="queued-upscale-cap",
        ),
        pytest.param(
            state(task_type="seed", status_since=NOW - 600), POLICY, 5.0, id="queued-seed-min"
        ),
        pytest.param(state(status_since=NOW + 50), POLICY, 5.0, id="queued-clock-skew"),
        pytest.param(
            state(upstream_status="staged", status_since=NOW - 12), POLICY, 12.0, id="staged-12s"
        ),
        pytest.param(
            running(upstream_status="starting", status_since=NOW),
            POLICY,
            5.0,
            id="starting-just-now",
        ),
        pytest.param(
            running(upstream_status="starting", status_since=NOW - 12),
            POLICY,
            12.0,
            id="starting-12s",
        ),
        pytest.param(
            running(upstream_status="starting", status_since=NOW - 300),
            POLICY,
            30.0,
            id="starting-long-imagine-cap",
        ),
        # running without any percentage: at the earliest end, then the minimum interval
        pytest.param(running(status_since=NOW), POLICY, 22.5, id="no-pct-imagine-just-now"),
        pytest.param(running(status_since=NOW - 10), POLICY, 12.5, id="no-pct-imagine-10s"),
        pytest.param(running(status_since=NOW - 30), POLICY, 5.0, id="no-pct-in-window-min"),
        pytest.param(running(status_since=NOW - 100), POLICY, 5.0, id="no-pct-overdue-min"),
        pytest.param(running("seed", status_since=NOW), POLICY, 5.0, id="no-pct-seed-min"),
        pytest.param(running("upscale#1", status_since=NOW), POLICY, 11.25, id="no-pct-upscale"),
        pytest.param(running("imagine-video", status_since=NOW), POLICY, 45.0, id="no-pct-video"),
        pytest.param(running(), POLICY, 5.0, id="nothing-known-min"),
        pytest.param(
            running("zoom-out-2x", status_since=NOW - 10), POLICY, 12.5, id="unknown-type"
        ),
        pytest.param(running(None, status_since=NOW - 10), POLICY, 12.5, id="type-not-known"),
        pytest.param(
            running("imagine", upstream_status="retrying", status_since=NOW - 10),
            POLICY,
            12.5,
            id="unknown-status-word-runs",
        ),
        # one reading: the second at half the least time left, to measure a rate
        pytest.param(
            running(progress=0, progress_at=NOW - 100, status_since=NOW),
            POLICY,
            15.0,
            id="one-reading-0",
        ),
        pytest.param(
            running(progress=20, progress_at=NOW, status_since=NOW),
            POLICY,
            12.0,
            id="one-reading-20",
        ),
        pytest.param(
            running("imagine-video", progress=10, progress_at=NOW, status_since=NOW),
            POLICY,
            27.0,
            id="one-reading-video",
        ),
        pytest.param(
            running(progress=90, progress_at=NOW, status_since=NOW),
            POLICY,
            5.0,
            id="one-reading-90-min",
        ),
        pytest.param(
            running(progress=100, progress_at=NOW, status_since=NOW - 10),
            POLICY,
            5.0,
            id="at-100-not-finished-min",
        ),
        # a rate: a narrow window is aimed at, just after its latest end
        pytest.param(
            running(
                progress=80,
                progress_at=NOW,
                prev_progress=40,
                prev_progress_at=NOW - 20,
                status_since=NOW - 40,
            ),
            POLICY,
            20 * 20 / 39 * 1.06 + 0.25,
            id="narrow-aim-after-the-end",
        ),
        pytest.param(
            running(
                progress=80,
                progress_at=NOW - 20,
                prev_progress=40,
                prev_progress_at=NOW - 40,
                status_since=NOW - 60,
            ),
            POLICY,
            5.0,
            id="past-the-window-min",
        ),
        # a wide window: a refining reading 6 s before its start...
        pytest.param(
            running(
                progress=50,
                progress_at=NOW,
                prev_progress=10,
                prev_progress_at=NOW - 20,
                status_since=NOW - 25,
            ),
            POLICY,
            49 * 20 / 41 * 0.94 - 6,
            id="wide-refine-before-the-start",
        ),
        # ...or at 60 % of the time to it when the percentage speeds up
        pytest.param(
            running(
                progress=50,
                progress_at=NOW,
                prev_progress=10,
                prev_progress_at=NOW - 20,
                status_since=NOW - 40,
            ),
            POLICY,
            49 * 20 / 41 * 0.94 * 0.6,
            id="speeding-up-refine-earlier",
        ),
        # ...never later than 60 % of the type's longest typical time left
        pytest.param(
            running(
                progress=40,
                progress_at=NOW,
                prev_progress=20,
                prev_progress_at=NOW - 20,
                status_since=NOW - 30,
            ),
            POLICY,
            (90 - 30) * 0.6,
            id="refine-capped-by-typical",
        ),
        # ...nor more than twice the baseline the rate was measured over
        pytest.param(
            running(
                "imagine-video",
                progress=10,
                progress_at=NOW,
                prev_progress=0,
                prev_progress_at=NOW - 100,
                status_since=NOW - 30,
            ),
            WIDE,
            60.0,
            id="refine-capped-by-baseline",
        ),
        # too close for a reading to narrow the window: at its start, then the minimum
        pytest.param(
            running(
                "imagine-video",
                progress=95,
                progress_at=NOW,
                prev_progress=90,
                prev_progress_at=NOW - 20,
                status_since=NOW - 200,
            ),
            POLICY,
            4 * 20 / 6 * 0.94,
            id="end-game-at-the-start",
        ),
        pytest.param(
            running(
                "seed",
                progress=90,
                progress_at=NOW,
                prev_progress=50,
                prev_progress_at=NOW - 5,
                status_since=NOW - 6,
            ),
            POLICY,
            5.0,
            id="end-sooner-than-min",
        ),
        pytest.param(
            running(
                "imagine-video",
                progress=11,
                progress_at=NOW,
                prev_progress=10,
                prev_progress_at=NOW - 100,
                status_since=NOW - 100,
            ),
            POLICY,
            120.0,
            id="slow-rate-max",
        ),
        # errors: backoff wins over everything else
        pytest.param(running(status_since=NOW, errors=1), POLICY, 5.0, id="errors-1"),
        pytest.param(running(status_since=NOW, errors=2), POLICY, 10.0, id="errors-2"),
        pytest.param(running(status_since=NOW, errors=4), POLICY, 40.0, id="errors-4"),
        pytest.param(running(status_since=NOW, errors=9), POLICY, 120.0, id="errors-9-max"),
        pytest.param(state(status_since=NOW - 600, errors=1), POLICY, 5.0, id="errors-queued"),
    ],
)
def test_next_delay(task: TaskState, policy: PollPolicy, expected: float) -> None:
    assert next_delay(task, NOW, policy) == pytest.approx(expected)


@pytest.mark.parametrize("errors", range(1, 12), ids=lambda n: f"errors-{n}")
def test_errors_backoff_grows(errors: int) -> None:
    before = next_delay(running(status_since=NOW, errors=errors), NOW, POLICY)
    after = next_delay(running(status_since=NOW, errors=errors + 1), NOW, POLICY)
    assert before <= after
    assert after == min(POLICY.max_interval, 2 * before)


@pytest.mark.parametrize(
    ("seconds", "most_polls"),
    [
        pytest.param(30.0, 3, id="imagine-30s"),
        pytest.param(60.0, 3, id="imagine-60s"),
        pytest.param(80.0, 4, id="imagine-80s"),
        pytest.param(89.0, 5, id="imagine-89s"),
    ],
)
def test_a_steady_task_is_polled_just_after_its_end(seconds: float, most_polls: int) -> None:
    """Processing seen at NOW with the queue's "0", then a steady pace: few polls, news soon."""
    ends = NOW + seconds
    task = running(progress=0, progress_at=NOW - 30, status_since=NOW)
    now = NOW
    polls = 0
    while now < ends:
        polls += 1
        now += next_delay(task, now, POLICY)
        seen = min(99, int((now - NOW) * 100 / seconds))  # rounded down, as the upstream does
        if now < ends and seen != task.progress:
            task = msgspec.structs.replace(
                task,
                progress=seen,
                progress_at=now,
                prev_progress=task.progress,
                prev_progress_at=task.progress_at,
            )
    assert polls <= most_polls
    assert 0 <= now - ends <= 2.5


# --- properties -------------------------------------------------------------------------------

TIMES = st.floats(min_value=0.0, max_value=4e9, allow_nan=False, allow_infinity=False)
OPT_TIMES = st.none() | TIMES
PROGRESS = st.none() | st.integers(min_value=0, max_value=100)
TYPES = st.none() | st.sampled_from(["imagine", "seed", "imagine-video", "upscale#1"]) | st.text()
UPSTREAM_WORDS = st.none() | st.sampled_from(
    ["staged", "pending", "starting", "processing", "finished", "failed", "retrying"]
)

TASK_STATES = st.builds(
    TaskState,
    registered_at=TIMES,
    deadline_at=TIMES,
    status=st.sampled_from(["queued", "running", "succeeded", "failed", "timed_out"]),
    upstream_status=UPSTREAM_WORDS,
    progress=PROGRESS,
    task_type=TYPES,
    model=st.none() | st.text(max_size=10),
    result=st.just(Result()),
    error=st.none() | st.text(max_size=10),
    updated_at=OPT_TIMES,
    completed_at=OPT_TIMES,
    status_since=OPT_TIMES,
    progress_at=OPT_TIMES,
    prev_progress=PROGRESS,
    prev_progress_at=OPT_TIMES,
    failed_since=OPT_TIMES,
    errors=st.integers(min_value=0, max_value=10**6),
    not_found_since=OPT_TIMES,
)


@st.composite
def policies(draw: st.DrawFn) -> PollPolicy:
    low = draw(st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False))
    factor = draw(st.floats(min_value=1.0, max_value=1e4, allow_nan=False, allow_infinity=False))
    grace = draw(st.floats(min_value=0.0, max_value=1e4, allow_nan=False))
    return PollPolicy(min_interval=low, max_interval=low * factor, failed_grace=grace)


@settings(max_examples=1000, deadline=None, database=None)
@given(task=TASK_STATES, now=TIMES, policy=policies())
def test_next_delay_always_within_bounds(task: TaskState, now: float, policy: PollPolicy) -> None:
    delay = next_delay(task, now, policy)
    assert math.isfinite(delay)
    assert policy.min_interval <= delay <= policy.max_interval


@settings(max_examples=500, deadline=None, database=None)
@given(
    delay=st.floats(allow_nan=True, allow_infinity=True),
    attempt=st.integers(min_value=-(10**6), max_value=10**6),
    policy=policies(),
)
def test_clamp_and_backoff_within_bounds(delay: float, attempt: int, policy: PollPolicy) -> None:
    for got in (clamp(delay, policy), backoff(attempt, policy)):
        assert math.isfinite(got)
        assert policy.min_interval <= got <= policy.max_interval
    assert backoff(attempt, policy) <= backoff(attempt + 1, policy)


@settings(max_examples=1000, deadline=None, database=None)
@given(task=TASK_STATES, now=TIMES, policy=policies())
def test_next_delay_never_past_the_latest_plausible_end(
    task: TaskState, now: float, policy: PollPolicy
) -> None:
    """Aiming may poll early and fall back to the minimum interval, never poll late."""
    task = msgspec.structs.replace(task, errors=0)
    window = estimate_window(task, now)
    delay = next_delay(task, now, policy)
    if window is not None:
        assert delay <= max(policy.min_interval, window.latest + AFTER)
        assert window.earliest <= window.latest


@settings(max_examples=500, deadline=None, database=None)
@given(
    waited=st.lists(
        st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=2, max_size=2
    ),
    task_type=TYPES,
    word=st.sampled_from(["staged", "pending", "starting", None]),
    policy=policies(),
)
def test_waiting_polls_thin_out_but_not_beyond_the_shortest_job(
    waited: list[float], task_type: str | None, word: str | None, policy: PollPolicy
) -> None:
    status = "running" if word == "starting" else "queued"
    shorter, longer = sorted(waited)
    delays = [
        next_delay(
            state(status=status, upstream_status=word, task_type=task_type, status_since=NOW - w),
            NOW,
            policy,
        )
        for w in (shorter, longer)
    ]
    assert delays[0] <= delays[1]
    shortest_job = typical_range(task_type)[0]
    assert delays[1] <= max(policy.min_interval, min(policy.max_interval, shortest_job))


@settings(max_examples=300, deadline=None, database=None)
@given(task=TASK_STATES, now=TIMES, policy=policies(), errors=st.integers(1, 10**6))
def test_errors_always_back_off(
    task: TaskState, now: float, policy: PollPolicy, errors: int
) -> None:
    task = msgspec.structs.replace(task, errors=errors)
    assert next_delay(task, now, policy) == backoff(errors, policy)
