"""Table tests and properties of the poll schedule (relay.core.schedule).

Expectations follow shared/CONTRACT.md (RELAY_POLL_MIN_INTERVAL / MAX_INTERVAL bound every
delay) and shared/upstream/NOTES.md (typical durations per task type, long queue waits,
progress that jumps). The promise under test: a task's end is never learnt later than by a
client polling every minimum interval from registration, whenever the task processes for at
least its type's shortest run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.core.lifecycle import observe
from relay.core.model import Observation, Result, TaskState
from relay.core.normalize import normalize
from relay.core.schedule import (
    EARLY,
    PollPolicy,
    backoff,
    clamp,
    is_waiting,
    next_delay,
    not_processing,
    quiet_until,
    shortest_run,
)

REGISTERED = 1_764_410_400.0  # 2025-11-29T10:00:00Z
NOW = REGISTERED + 600  # on the registration's 5 s grid
POLICY = PollPolicy(min_interval=5.0, max_interval=120.0, failed_grace=30.0)
NARROW = PollPolicy(min_interval=5.0, max_interval=30.0, failed_grace=30.0)
SLOW = PollPolicy(min_interval=10.0, max_interval=120.0, failed_grace=30.0)
TASK = "550e8400-e29b-41d4-a716-446655440000"


def state(**fields: Any) -> TaskState:
    """A task registered 10 minutes ago, with the given fields."""
    base: dict[str, Any] = {"registered_at": REGISTERED, "deadline_at": NOW + 3600}
    base.update(fields)
    return TaskState(**base)


def waiting(type_: str | None = "imagine", word: str = "pending", **fields: Any) -> TaskState:
    status = "running" if word == "starting" else "queued"
    return state(status=status, upstream_status=word, task_type=type_, waiting_at=NOW, **fields)


def running(type_: str | None = "imagine", **fields: Any) -> TaskState:
    fields.setdefault("upstream_status", "processing")
    return state(status="running", task_type=type_, **fields)


def obs(word: str, percentage: str | None = None, type_: str = "imagine") -> Observation:
    payload: dict[str, Any] = {"task_id": TASK, "task_type": type_, "status": word}
    if percentage is not None:
        payload["percentage"] = percentage
    return normalize(payload, TASK)


# --- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_type", "documented"),
    [
        pytest.param("seed", 5.0, id="seed"),
        pytest.param("describe", 10.0, id="describe"),
        pytest.param("shorten", 10.0, id="shorten"),
        pytest.param("upscale#1", 15.0, id="upscale#1"),
        pytest.param("upscale-creative", 15.0, id="upscale-creative"),
        pytest.param("faceswap", 15.0, id="faceswap"),
        pytest.param("imagine", 30.0, id="imagine"),
        pytest.param("reroll", 30.0, id="reroll"),
        pytest.param("variation-strong", 30.0, id="variation"),
        pytest.param("blend", 30.0, id="blend"),
        pytest.param("imagine-video", 60.0, id="video-before-imagine"),
        pytest.param("IMAGINE-VIDEO-EXTEND", 60.0, id="video-any-case"),
        pytest.param("inpaint", 0.0, id="untimed-type-no-quiet-span"),
        pytest.param("zoom-out-2x", 0.0, id="new-type-no-quiet-span"),
        pytest.param("", 0.0, id="empty"),
        pytest.param(None, 0.0, id="type-not-known-yet"),
    ],
)
def test_shortest_run_is_the_notes_less_a_margin(task_type: str | None, documented: float) -> None:
    assert shortest_run(task_type) == pytest.approx(documented * EARLY)
    assert 0 <= shortest_run(task_type) <= documented


@pytest.mark.parametrize(
    ("task", "expected"),
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
def test_is_waiting(task: TaskState, expected: bool) -> None:
    assert is_waiting(task) is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(obs("staged"), True, id="staged"),
        pytest.param(obs("pending"), True, id="pending"),
        pytest.param(obs("starting"), True, id="starting"),
        pytest.param(obs("failed"), True, id="failed-may-be-retried"),
        pytest.param(obs("processing", "0"), False, id="processing"),
        pytest.param(obs("processing", "93"), False, id="processing-93"),
        pytest.param(obs("retrying"), False, id="unknown-word-runs"),
        pytest.param(obs("finished", "100"), False, id="finished"),
    ],
)
def test_not_processing(answer: Observation, expected: bool) -> None:
    assert not_processing(answer) is expected


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        pytest.param(running(waiting_at=NOW - 10), NOW - 10 + 30 * EARLY, id="imagine"),
        pytest.param(
            running("imagine-video", waiting_at=NOW - 10), NOW - 10 + 60 * EARLY, id="video"
        ),
        pytest.param(running("seed", waiting_at=NOW), NOW + 5 * EARLY, id="seed"),
        pytest.param(running(waiting_at=None), None, id="never-seen-waiting"),
        pytest.param(running("inpaint", waiting_at=NOW), None, id="untimed-type"),
    ],
)
def test_quiet_until(task: TaskState, expected: float | None) -> None:
    assert quiet_until(task) == (pytest.approx(expected) if expected is not None else None)


# --- next_delay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "policy", "expected"),
    [
        # waiting: one poll per shortest run, at the first grid point after it
        pytest.param(waiting("imagine"), POLICY, 25.0, id="pending-imagine-22.5-to-grid-25"),
        pytest.param(waiting("imagine", "staged"), POLICY, 25.0, id="staged-imagine"),
        pytest.param(waiting("imagine", "starting"), POLICY, 25.0, id="starting-imagine"),
        pytest.param(waiting("imagine-video"), POLICY, 45.0, id="pending-video-45-on-grid"),
        pytest.param(waiting("upscale#1"), POLICY, 15.0, id="pending-upscale-11.25-to-15"),
        pytest.param(waiting("describe"), POLICY, 10.0, id="pending-describe-7.5-to-10"),
        pytest.param(waiting("seed"), POLICY, 5.0, id="pending-seed-under-min"),
        pytest.param(waiting("inpaint"), POLICY, 5.0, id="pending-untimed-type-min"),
        pytest.param(waiting(None), POLICY, 5.0, id="pending-type-unknown-min"),
        pytest.param(waiting("imagine-video"), NARROW, 30.0, id="pending-video-max"),
        pytest.param(
            waiting("imagine-video", registered_at=REGISTERED + 2.5),
            NARROW,
            27.5,
            id="pending-video-last-grid-point-within-max",
        ),
        pytest.param(waiting("imagine-video"), SLOW, 50.0, id="pending-video-10s-grid"),
        pytest.param(
            waiting("imagine-video", registered_at=REGISTERED + 2.5),
            POLICY,
            47.5,
            id="grid-from-registration",
        ),
        pytest.param(
            waiting("imagine", registered_at=REGISTERED + 0.3),
            POLICY,
            25.3,
            id="off-grid-now-back-on-the-grid",
        ),
        pytest.param(
            waiting("imagine", registered_at=REGISTERED + 4.9),
            POLICY,
            24.9,
            id="off-grid-now-back-on-the-grid-sooner",
        ),
        # processing: left alone for a shortest run after it was last seen waiting...
        pytest.param(running(waiting_at=NOW), POLICY, 25.0, id="just-began-imagine"),
        pytest.param(running(waiting_at=NOW - 10), POLICY, 15.0, id="began-10s-ago-to-grid"),
        pytest.param(running(waiting_at=NOW - 15), POLICY, 10.0, id="quiet-7.5s-left-to-grid"),
        pytest.param(running(waiting_at=NOW - 17.5), POLICY, 5.0, id="quiet-5s-left-min"),
        pytest.param(running(waiting_at=NOW - 20), POLICY, 5.0, id="quiet-ends-within-min"),
        pytest.param(
            running("imagine-video", waiting_at=NOW - 20), POLICY, 25.0, id="video-quiet-25"
        ),
        pytest.param(
            running("imagine-video", waiting_at=NOW - 17.5, registered_at=REGISTERED + 2.5),
            POLICY,
            27.5,
            id="video-quiet-ends-on-its-grid",
        ),
        pytest.param(
            running("upscale-2x", upstream_status="retrying", waiting_at=NOW),
            POLICY,
            15.0,
            id="unknown-word-counts-as-processing",
        ),
        # ...then every minimum interval: an end is plausible at any moment
        pytest.param(running(waiting_at=NOW - 30), POLICY, 5.0, id="past-quiet-min"),
        pytest.param(running(waiting_at=NOW - 3000), POLICY, 5.0, id="long-running-min"),
        pytest.param(running(waiting_at=None), POLICY, 5.0, id="never-seen-waiting-min"),
        pytest.param(running("zoom-out", waiting_at=NOW), POLICY, 5.0, id="untimed-type-min"),
        pytest.param(running(waiting_at=NOW - 30), SLOW, 10.0, id="past-quiet-slower-min"),
        pytest.param(
            running(waiting_at=NOW - 30, progress=93),
            POLICY,
            5.0,
            id="a-high-reading-changes-nothing",
        ),
        pytest.param(
            running(waiting_at=NOW - 30, progress=0),
            POLICY,
            5.0,
            id="a-zero-reading-changes-nothing",
        ),
        # errors: backoff wins over everything else
        pytest.param(running(waiting_at=NOW, errors=1), POLICY, 5.0, id="errors-1"),
        pytest.param(running(waiting_at=NOW, errors=2), POLICY, 10.0, id="errors-2"),
        pytest.param(running(waiting_at=NOW, errors=4), POLICY, 40.0, id="errors-4"),
        pytest.param(running(waiting_at=NOW, errors=9), POLICY, 120.0, id="errors-9-max"),
        pytest.param(waiting("imagine-video", errors=1), POLICY, 5.0, id="errors-while-waiting"),
    ],
)
def test_next_delay(task: TaskState, policy: PollPolicy, expected: float) -> None:
    assert next_delay(task, NOW, policy) == pytest.approx(expected)


@pytest.mark.parametrize("errors", range(1, 12), ids=lambda n: f"errors-{n}")
def test_errors_backoff_grows(errors: int) -> None:
    before = next_delay(running(errors=errors), NOW, POLICY)
    after = next_delay(running(errors=errors + 1), NOW, POLICY)
    assert before <= after
    assert after == min(POLICY.max_interval, 2 * before)


# --- replays: the relay never learns an end later than polling every 5 s --------------------
# A task's timeline is a list of (upstream word, seconds, percentage shown) stretches, then
# `finished`; it is replayed through normalize + lifecycle, as the worker does.

Timeline = Sequence[tuple[str, float, str | None]]


def answer_at(timeline: Timeline, t: float, type_: str) -> dict[str, Any]:
    start = 0.0
    for word, seconds, percentage in timeline:
        if t < start + seconds:
            body: dict[str, Any] = {"task_id": TASK, "task_type": type_, "status": word}
            if percentage is not None:
                body["percentage"] = percentage
            return body
        start += seconds
    return {"task_id": TASK, "task_type": type_, "status": "finished", "percentage": "100"}


def learnt_at(timeline: Timeline, type_: str, policy: PollPolicy, fixed: bool) -> tuple[float, int]:
    """When a poller learns the end, and with how many calls: the relay's schedule or fixed."""
    task = TaskState(registered_at=REGISTERED, deadline_at=REGISTERED + 86_400)
    t = 0.0
    for calls in range(1, 10_000):
        step = observe(task, normalize(answer_at(timeline, t, type_), TASK), REGISTERED + t, policy)
        if step.delay is None:
            return t, calls
        task = step.state
        t += policy.min_interval if fixed else step.delay
    raise AssertionError("never ended")


def jumps(word: str, seconds: float, values: Sequence[tuple[float, str]]) -> list[Any]:
    """A processing run of `seconds` showing each (share of the run, value) from its share on."""
    marks = [(0.0, "0"), *values, (1.0, "")]
    return [(word, seconds * (b[0] - a[0]), a[1]) for a, b in itertools.pairwise(marks)]


MJ = [(0.18, "15"), (0.22, "31"), (0.5, "46"), (0.55, "62"), (0.9, "78")]  # then straight to end


@pytest.mark.parametrize(
    ("type_", "timeline", "fewer_calls"),
    [
        pytest.param(
            "imagine",
            [
                ("staged", 1.2, None),
                ("pending", 3.0, None),
                ("starting", 2.1, None),
                *jumps("processing", 47.3, MJ),
            ],
            True,
            id="imagine-jumps-straight-to-end",
        ),
        pytest.param(
            "imagine-video",
            [
                ("staged", 0.4, None),
                ("pending", 312.0, None),
                ("starting", 4.0, None),
                *jumps("processing", 61.0, [(0.97, "93")]),
            ],
            True,
            id="relax-queue-video-at-its-shortest",
        ),
        pytest.param(
            "upscale#1",
            [("pending", 1.0, None), ("processing", 11.3, "0")],
            True,
            id="upscale-a-quarter-faster-than-documented",
        ),
        pytest.param(
            "seed",
            [("pending", 2.0, None), ("processing", 3.8, None)],
            False,
            id="seed-shorter-than-documented",
        ),
        pytest.param(
            "imagine",
            [
                ("pending", 2.0, None),
                *jumps("processing", 20.0, [(0.5, "46")]),
                ("failed", 7.0, None),
                *jumps("processing", 40.0, [(0.1, "92")]),
            ],
            True,
            id="retried-after-failed",
        ),
        pytest.param(
            "zoom-out-2x",
            [("pending", 2.0, None), ("processing", 2.5, None)],
            False,
            id="untimed-type-polled-like-fixed",
        ),
    ],
)
def test_a_replayed_task_ends_no_later_than_fixed_polling(
    type_: str, timeline: Timeline, fewer_calls: bool
) -> None:
    relay_at, relay_calls = learnt_at(timeline, type_, POLICY, fixed=False)
    fixed_at, fixed_calls = learnt_at(timeline, type_, POLICY, fixed=True)
    assert relay_at <= fixed_at
    assert (relay_calls < fixed_calls) is fewer_calls
    assert relay_calls <= fixed_calls


RUN_TYPES = st.sampled_from(
    ["seed", "describe", "upscale#1", "faceswap", "imagine", "blend", "imagine-video", "inpaint"]
)
PERCENTAGES = st.none() | st.sampled_from(["0", "15", "31", "46", "62", "78", "93", ""])


@st.composite
def timelines(draw: st.DrawFn) -> tuple[str, list[tuple[str, float, str | None]]]:
    """Any lifecycle whose every processing run lasts at least the type's shortest run."""
    type_ = draw(RUN_TYPES)
    seconds = st.floats(min_value=0.0, max_value=900.0, allow_nan=False)
    timeline: list[tuple[str, float, str | None]] = []
    for word in ("staged", "pending", "starting"):
        if draw(st.booleans()):
            timeline.append((word, draw(seconds), None))
    for run in range(draw(st.integers(min_value=1, max_value=2))):
        if run:
            # The upstream's own retry: `failed` for a while, maybe queued again.
            timeline.append(("failed", draw(st.floats(min_value=0.1, max_value=25.0)), None))
            if draw(st.booleans()):
                timeline.append(("pending", draw(seconds), None))
        pieces = draw(st.lists(st.tuples(seconds, PERCENTAGES), min_size=1, max_size=7))
        total = sum(s for s, _ in pieces)
        floor = shortest_run(type_)
        if total < floor:
            pieces.append((floor - total + 1e-3, None))
        word = draw(st.sampled_from(["processing", "processing", "retrying"]))
        timeline += [(word, s, p) for s, p in pieces]
    return type_, [piece for piece in timeline if piece[1] > 0]


@settings(max_examples=300, deadline=None, database=None)
@given(task=timelines())
def test_never_later_than_fixed_polling(task: tuple[str, list[Any]]) -> None:
    """Progress that jumps, sits still or skips to the end, relax queues, retries: the relay
    learns the end at the same poll as a client polling every 5 s from registration, or
    sooner, as long as no processing run is shorter than the type's shortest run."""
    type_, timeline = task
    relay_at, relay_calls = learnt_at(timeline, type_, POLICY, fixed=False)
    fixed_at, fixed_calls = learnt_at(timeline, type_, POLICY, fixed=True)
    assert relay_at <= fixed_at + 1e-6
    assert relay_calls <= fixed_calls


# --- properties of next_delay -----------------------------------------------------------------

TIMES = st.floats(min_value=0.0, max_value=4e9, allow_nan=False, allow_infinity=False)
OPT_TIMES = st.none() | TIMES
PROGRESS = st.none() | st.integers(min_value=0, max_value=100)
TYPES = st.none() | RUN_TYPES | st.text()
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
    failed_since=OPT_TIMES,
    errors=st.integers(min_value=0, max_value=10**6),
    not_found_since=OPT_TIMES,
    waiting_at=OPT_TIMES,
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


@settings(max_examples=1000, deadline=None, database=None)
@given(task=TASK_STATES, now=TIMES, policy=policies())
def test_next_delay_at_most_one_interval_past_the_quiet_span(
    task: TaskState, now: float, policy: PollPolicy
) -> None:
    """A saving reaches no further than the first grid point at which an end can be seen."""
    task = msgspec.structs.replace(task, errors=0)
    delay = next_delay(task, now, policy)
    if is_waiting(task):
        quiet = shortest_run(task.task_type)
    else:
        until = quiet_until(task)
        quiet = until - now if until is not None else 0.0
    if quiet <= policy.min_interval:
        assert delay == policy.min_interval
    else:
        assert delay < quiet + policy.min_interval + 1e-6


@settings(max_examples=500, deadline=None, database=None)
@given(
    task=TASK_STATES,
    ticks=st.integers(min_value=0, max_value=10**6),
    policy=st.sampled_from([POLICY, NARROW, SLOW, PollPolicy(3.0, 200.0)]),
)
def test_a_poll_on_the_grid_stays_on_it(task: TaskState, ticks: int, policy: PollPolicy) -> None:
    task = msgspec.structs.replace(task, errors=0, registered_at=REGISTERED)
    now = REGISTERED + ticks * policy.min_interval
    delay = next_delay(task, now, policy)
    steps = delay / policy.min_interval
    assert steps == pytest.approx(round(steps), abs=1e-6)


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


@settings(max_examples=300, deadline=None, database=None)
@given(task=TASK_STATES, now=TIMES, policy=policies(), errors=st.integers(1, 10**6))
def test_errors_always_back_off(
    task: TaskState, now: float, policy: PollPolicy, errors: int
) -> None:
    task = msgspec.structs.replace(task, errors=errors)
    assert next_delay(task, now, policy) == backoff(errors, policy)
