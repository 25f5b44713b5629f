"""Table tests and properties of the poll schedule (relay.core.schedule).

Expectations follow shared/CONTRACT.md (RELAY_POLL_MIN_INTERVAL / MAX_INTERVAL bound every
delay) and shared/upstream/NOTES.md (typical durations per task type, long queue waits).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.core.model import Result, TaskState
from relay.core.schedule import (
    PollPolicy,
    backoff,
    clamp,
    estimate_remaining,
    next_delay,
    typical_duration,
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


# --- estimate_remaining -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "now", "expected"),
    [
        pytest.param(running(), NOW, None, id="nothing-known"),
        pytest.param(running(status_since=NOW), NOW, 60.0, id="just-started-imagine"),
        pytest.param(running(status_since=NOW - 20), NOW, 40.0, id="started-20s-ago"),
        pytest.param(running(status_since=NOW - 90), NOW, -30.0, id="overdue-negative"),
        pytest.param(
            running("imagine-video", status_since=NOW - 60), NOW, 120.0, id="video-started-60s"
        ),
        pytest.param(running("seed", status_since=NOW), NOW, 10.0, id="seed-just-started"),
        pytest.param(
            running(progress=40, progress_at=NOW, prev_progress=20, prev_progress_at=NOW - 10),
            NOW,
            30.0,
            id="rate-two-observations",
        ),
        pytest.param(
            running(progress=40, progress_at=NOW - 5, prev_progress=20, prev_progress_at=NOW - 15),
            NOW,
            25.0,
            id="rate-two-observations-time-passed",
        ),
        pytest.param(
            running(progress=50, progress_at=NOW, status_since=NOW - 20),
            NOW,
            20.0,
            id="rate-from-start-of-running",
        ),
        pytest.param(
            running(
                progress=40,
                progress_at=NOW,
                prev_progress=50,
                prev_progress_at=NOW - 10,
                status_since=NOW - 30,
            ),
            NOW,
            30.0,
            id="progress-went-back-uses-typical",
        ),
        pytest.param(
            running(progress=100, progress_at=NOW, status_since=NOW - 10),
            NOW,
            50.0,
            id="at-100-not-finished-uses-typical",
        ),
        pytest.param(
            running(progress=30, progress_at=NOW, prev_progress=30, prev_progress_at=NOW),
            NOW,
            None,
            id="no-elapsed-time-nothing-known",
        ),
    ],
)
def test_estimate_remaining(task: TaskState, now: float, expected: float | None) -> None:
    got = estimate_remaining(task, now)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


# --- next_delay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "policy", "expected"),
    [
        # queued: long-tailed waits, the longer the wait the sparser the polls
        pytest.param(state(), POLICY, 5.0, id="queued-never-seen"),
        pytest.param(state(status_since=NOW), POLICY, 5.0, id="queued-just-now"),
        pytest.param(state(status_since=NOW - 8), POLICY, 5.0, id="queued-short-wait"),
        pytest.param(state(status_since=NOW - 100), POLICY, 25.0, id="queued-100s"),
        pytest.param(state(status_since=NOW - 200), POLICY, 50.0, id="queued-200s"),
        pytest.param(state(status_since=NOW - 600), POLICY, 120.0, id="queued-relax-10min-max"),
        pytest.param(state(status_since=NOW - 3600), POLICY, 120.0, id="queued-hour-max"),
        pytest.param(state(status_since=NOW + 50), POLICY, 5.0, id="queued-clock-skew"),
        pytest.param(
            state(upstream_status="staged", status_since=NOW - 40), POLICY, 10.0, id="staged-40s"
        ),
        # starting: the typical duration of the type, counted from the start
        pytest.param(
            running(upstream_status="starting", status_since=NOW),
            POLICY,
            60.5,
            id="starting-imagine-just-now",
        ),
        pytest.param(
            running(upstream_status="starting", status_since=NOW - 30),
            POLICY,
            30.5,
            id="starting-imagine-30s",
        ),
        pytest.param(
            running(upstream_status="starting", status_since=NOW - 300),
            POLICY,
            5.0,
            id="starting-overdue-min",
        ),
        # processing with a progress rate from two observations
        pytest.param(
            running(progress=40, progress_at=NOW, prev_progress=20, prev_progress_at=NOW - 10),
            POLICY,
            30.5,
            id="rate-2pct-per-s",
        ),
        pytest.param(
            running(progress=40, progress_at=NOW - 10, prev_progress=20, prev_progress_at=NOW - 20),
            POLICY,
            20.5,
            id="rate-2pct-per-s-10s-later",
        ),
        pytest.param(
            running(progress=90, progress_at=NOW, prev_progress=80, prev_progress_at=NOW - 2),
            POLICY,
            5.0,
            id="rate-fast-min",
        ),
        pytest.param(
            running(progress=11, progress_at=NOW, prev_progress=10, prev_progress_at=NOW - 100),
            POLICY,
            120.0,
            id="rate-slow-max",
        ),
        pytest.param(
            running(progress=50, progress_at=NOW, status_since=NOW - 20),
            POLICY,
            20.5,
            id="rate-from-start-one-observation",
        ),
        # processing with only the start time
        pytest.param(running(status_since=NOW - 10), POLICY, 50.5, id="only-start-imagine"),
        pytest.param(running("seed", status_since=NOW), POLICY, 10.5, id="only-start-seed"),
        pytest.param(
            running("describe", status_since=NOW - 5), POLICY, 15.5, id="only-start-describe"
        ),
        pytest.param(running("upscale#1", status_since=NOW), POLICY, 30.5, id="only-start-upscale"),
        pytest.param(
            running("imagine-video", status_since=NOW - 10),
            POLICY,
            120.0,
            id="only-start-video-max",
        ),
        pytest.param(
            running("imagine-video", status_since=NOW - 10),
            WIDE,
            170.5,
            id="only-start-video-wide-max",
        ),
        pytest.param(running(), POLICY, 5.0, id="nothing-known-min"),
        # unknown task types
        pytest.param(
            running("zoom-out-2x", status_since=NOW - 10), POLICY, 50.5, id="unknown-type"
        ),
        pytest.param(running(None, status_since=NOW - 10), POLICY, 50.5, id="type-not-known"),
        pytest.param(
            running("imagine", upstream_status="retrying", status_since=NOW - 10),
            POLICY,
            50.5,
            id="unknown-status-word",
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
