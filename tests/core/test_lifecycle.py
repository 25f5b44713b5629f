"""Table tests and properties of what one answer does to a task (relay.core.lifecycle).

Expectations follow shared/CONTRACT.md: the status mapping, when a `task.progress` event is
made, the failed grace (it wins over RELAY_POLL_MAX_INTERVAL), Retry-After (wins over the
maximum, never under the minimum), the deadline's `timed_out`, and "no event is sent for a
task after its final one". Answers are built from upstream payloads through `normalize`, so
they look exactly as the worker and the upstream-webhook route feed them.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.core.lifecycle import Step, expire, fault, not_found, observe
from relay.core.model import FINAL_STATUSES, Observation, TaskState
from relay.core.normalize import normalize
from relay.core.schedule import PollPolicy
from support import payloads
from support.payloads import FINISHED_GRID, TASK

T0 = 1_764_410_400.0  # registration, 2025-11-29T10:00:00Z
NOW = T0 + 60
DEADLINE = 3600.0
POLICY = PollPolicy(min_interval=5.0, max_interval=60.0, failed_grace=30.0, not_found_limit=300.0)
FINAL_EVENTS = {"task.succeeded", "task.failed", "task.timed_out"}
GRID = FINISHED_GRID["image_urls"]


def answer(status: str, percentage: Any = None, **fields: Any) -> Observation:
    """One upstream fetch answer about TASK, normalized."""
    if percentage is not None:
        fields["percentage"] = percentage
    return normalize(payloads.answer(TASK, status, **fields), TASK)


def bare(status: str) -> Observation:
    """An answer with nothing but the task id and the status word."""
    return normalize({"task_id": TASK, "status": status}, TASK)


FINISHED = normalize(FINISHED_GRID, TASK)
FAILED = answer("failed", error="Content policy violation")


def task(**fields: Any) -> TaskState:
    """A task registered at T0 with the given fields."""
    base: dict[str, Any] = {"registered_at": T0, "deadline_at": T0 + DEADLINE}
    base.update(fields)
    return TaskState(**base)


FRESH = task()
STAGED = task(upstream_status="staged", status_since=T0, updated_at=T0)
STARTING = task(
    status="running", upstream_status="starting", task_type="imagine", status_since=T0 + 10
)
AT_45 = task(
    status="running",
    upstream_status="processing",
    progress=45,
    task_type="imagine",
    model="midjourney",
    status_since=T0 + 20,
    updated_at=T0 + 40,
)


# --- observe: transitions and events ----------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "obs", "status", "upstream_status", "event", "progress"),
    [
        pytest.param(FRESH, answer("staged"), "queued", "staged", None, None, id="fresh-staged"),
        pytest.param(FRESH, answer("pending"), "queued", "pending", None, None, id="fresh-pending"),
        pytest.param(
            STAGED, answer("pending"), "queued", "pending", None, None, id="staged-to-pending"
        ),
        pytest.param(
            STAGED, answer("staged"), "queued", "staged", None, None, id="queued-to-queued"
        ),
        pytest.param(
            STAGED,
            answer("starting"),
            "running",
            "starting",
            "task.progress",
            None,
            id="queued-to-starting",
        ),
        pytest.param(
            STAGED,
            answer("processing", "0"),
            "running",
            "processing",
            "task.progress",
            0,
            id="queued-to-processing-0",
        ),
        pytest.param(
            STARTING,
            answer("starting"),
            "running",
            "starting",
            None,
            None,
            id="starting-to-starting",
        ),
        pytest.param(
            STARTING,
            answer("processing"),
            "running",
            "processing",
            None,
            None,
            id="starting-to-processing-no-percentage",
        ),
        pytest.param(
            STARTING,
            answer("processing", "0"),
            "running",
            "processing",
            "task.progress",
            0,
            id="first-known-percentage-0-is-a-change",
        ),
        pytest.param(
            STARTING,
            answer("processing", "12"),
            "running",
            "processing",
            "task.progress",
            12,
            id="first-known-percentage-12",
        ),
        pytest.param(
            AT_45,
            answer("processing", "45"),
            "running",
            "processing",
            None,
            45,
            id="same-progress-no-event",
        ),
        pytest.param(
            AT_45,
            answer("processing", "45%"),
            "running",
            "processing",
            None,
            45,
            id="same-progress-percent-sign",
        ),
        pytest.param(
            AT_45,
            answer("processing", "50"),
            "running",
            "processing",
            "task.progress",
            50,
            id="progress-moves",
        ),
        pytest.param(
            AT_45,
            answer("processing", "40"),
            "running",
            "processing",
            "task.progress",
            40,
            id="progress-goes-back",
        ),
        pytest.param(
            AT_45,
            answer("processing"),
            "running",
            "processing",
            None,
            45,
            id="no-percentage-keeps-progress",
        ),
        pytest.param(
            AT_45,
            answer("processing", ""),
            "running",
            "processing",
            None,
            45,
            id="empty-percentage-keeps-progress",
        ),
        pytest.param(
            AT_45,
            answer("processing", "n/a"),
            "running",
            "processing",
            None,
            45,
            id="garbage-percentage-keeps-progress",
        ),
        pytest.param(
            AT_45,
            answer("retrying"),
            "running",
            "retrying",
            None,
            45,
            id="unknown-word-while-running",
        ),
        pytest.param(
            STAGED,
            answer("retry"),
            "running",
            "retry",
            "task.progress",
            None,
            id="unknown-word-from-queued",
        ),
        pytest.param(
            AT_45, FINISHED, "succeeded", "finished", "task.succeeded", 100, id="finished"
        ),
        pytest.param(
            FRESH,
            answer("finished", image_url="https://images.journeyapi.com/flux/abc123.png"),
            "succeeded",
            "finished",
            "task.succeeded",
            100,
            id="synchronous-first-answer-finished-no-percentage",
        ),
        pytest.param(
            STARTING,
            answer("finished", "37", seed="1234567890"),
            "succeeded",
            "finished",
            "task.succeeded",
            100,
            id="finished-reports-100-whatever-it-says",
        ),
    ],
)
def test_observe_transitions(
    before: TaskState,
    obs: Observation,
    status: str,
    upstream_status: str,
    event: str | None,
    progress: int | None,
) -> None:
    step = observe(before, obs, NOW, POLICY)
    assert step.state.status == status
    assert step.state.upstream_status == upstream_status
    assert step.event == event
    assert step.state.progress == progress
    if status in FINAL_STATUSES:
        assert step.delay is None
        assert step.state.completed_at == NOW
    else:
        assert step.delay is not None
        assert POLICY.min_interval <= step.delay <= POLICY.max_interval
        assert step.state.completed_at is None


def test_finished_carries_the_result() -> None:
    step = observe(AT_45, FINISHED, NOW, POLICY)
    assert step.event == "task.succeeded"
    assert step.state.result.images == tuple(GRID)
    assert step.state.result.grid_image == "https://cdn.midjourney.com/abc123/grid_0.png"
    assert step.state.error is None
    assert step.state.updated_at == NOW


@pytest.mark.parametrize(
    ("obs", "task_type", "model"),
    [
        pytest.param(answer("processing", "50"), "imagine", "midjourney", id="both-in-answer"),
        pytest.param(
            normalize({"task_id": TASK, "status": "processing", "percentage": "50"}),
            "imagine",
            "midjourney",
            id="answer-without-type-keeps-known",
        ),
    ],
)
def test_observe_keeps_known_type_and_model(obs: Observation, task_type: str, model: str) -> None:
    step = observe(AT_45, obs, NOW, POLICY)
    assert (step.state.task_type, step.state.model) == (task_type, model)


# --- the failed grace -------------------------------------------------------------------------


# Within the grace the task is polled at the schedule's pace (the upstream may retry it at
# once, and a short retry may end before the grace does): an imagine is not processing, so
# it cannot end within 22.5 s, and is polled at the first grid point after, 25 s.
@pytest.mark.parametrize(
    ("before", "policy", "delay"),
    [
        pytest.param(AT_45, POLICY, 25.0, id="grace-30-polled-at-the-schedules-pace"),
        pytest.param(STAGED, POLICY, 25.0, id="grace-from-queued"),
        pytest.param(AT_45, PollPolicy(5.0, 60.0, failed_grace=600.0), 25.0, id="grace-beyond-max"),
        pytest.param(
            AT_45, PollPolicy(5.0, 60.0, failed_grace=15.0), 15.0, id="grace-sooner-than-pace"
        ),
        pytest.param(
            AT_45, PollPolicy(5.0, 60.0, failed_grace=2.0), 5.0, id="grace-under-min-gets-min"
        ),
        pytest.param(AT_45, PollPolicy(5.0, 60.0, failed_grace=5.0), 5.0, id="grace-equals-min"),
        pytest.param(FRESH, POLICY, 5.0, id="untimed-type-every-min"),
    ],
)
def test_first_failed_is_held(before: TaskState, policy: PollPolicy, delay: float) -> None:
    failed = bare("failed") if before is FRESH else FAILED
    step = observe(before, failed, NOW, policy)
    assert step.event is None
    assert step.state.status == before.status  # the status stays as it was
    assert step.state.upstream_status == "failed"
    assert step.state.progress == before.progress
    assert step.state.error is None
    assert step.state.completed_at is None
    assert step.state.failed_since == NOW
    assert step.state.waiting_at == NOW
    assert step.delay == pytest.approx(delay)
    assert step.delay >= policy.min_interval


@pytest.mark.parametrize(
    ("later", "held", "delay"),
    [
        pytest.param(10.0, True, 20.0, id="again-within-grace-waits-the-rest"),
        pytest.param(27.0, True, 5.0, id="again-near-end-of-grace-min"),
        pytest.param(30.0, False, None, id="again-at-end-of-grace-fails"),
        pytest.param(400.0, False, None, id="again-long-after-grace-fails"),
    ],
)
def test_failed_again(later: float, held: bool, delay: float | None) -> None:
    first = observe(AT_45, FAILED, NOW, POLICY)
    step = observe(first.state, FAILED, NOW + later, POLICY)
    if held:
        assert step.event is None
        assert step.state.status == "running"
        assert step.state.failed_since == NOW
        assert step.delay == pytest.approx(delay)
    else:
        assert step.event == "task.failed"
        assert step.state.status == "failed"
        assert step.state.upstream_status == "failed"
        assert step.state.error == "Content policy violation"
        assert step.state.completed_at == NOW + later
        assert step.state.updated_at == NOW + later
        assert step.delay is None


@pytest.mark.parametrize(
    ("after", "status", "event"),
    [
        pytest.param(answer("processing", "45"), "running", None, id="processing-same-progress"),
        pytest.param(answer("processing", "60"), "running", "task.progress", id="processing-60"),
        pytest.param(answer("pending"), "queued", "task.progress", id="back-to-pending"),
        pytest.param(FINISHED, "succeeded", "task.succeeded", id="finished"),
    ],
)
def test_failed_then_other_answer_clears_the_grace(
    after: Observation, status: str, event: str | None
) -> None:
    first = observe(AT_45, FAILED, NOW, POLICY)
    step = observe(first.state, after, NOW + 10, POLICY)
    assert step.state.failed_since is None
    assert step.state.status == status
    assert step.event == event
    assert step.state.error is None
    if status not in FINAL_STATUSES:
        # A later failed starts a fresh grace rather than ending the old one.
        again = observe(step.state, FAILED, NOW + 40, POLICY)
        assert again.event is None
        assert again.state.failed_since == NOW + 40
        assert again.delay == pytest.approx(25.0)  # the schedule's pace, within the grace


def test_a_grace_beyond_the_maximum_interval_still_holds_the_failure() -> None:
    policy = PollPolicy(5.0, 60.0, failed_grace=600.0)
    first = observe(AT_45, FAILED, NOW, policy)
    again = observe(first.state, FAILED, NOW + 300, policy)
    assert again.event is None
    assert again.state.status == "running"
    assert again.delay is not None and again.delay <= policy.max_interval
    last = observe(again.state, FAILED, NOW + 600, policy)
    assert last.event == "task.failed"


@pytest.mark.parametrize(
    ("before", "obs", "error"),
    [
        pytest.param(AT_45, FAILED, "Content policy violation", id="with-error"),
        pytest.param(FRESH, FAILED, "Content policy violation", id="first-answer-failed"),
        pytest.param(
            AT_45,
            answer("failed", error={"message": "Banned prompt"}),
            "Banned prompt",
            id="nested-error",
        ),
    ],
)
def test_grace_zero_fails_at_once(before: TaskState, obs: Observation, error: str) -> None:
    step = observe(before, obs, NOW, PollPolicy(5.0, 60.0, failed_grace=0.0))
    assert step.event == "task.failed"
    assert step.state.status == "failed"
    assert step.state.error == error
    assert step.state.completed_at == NOW
    assert step.delay is None


def test_failed_without_reason_gets_an_error() -> None:
    step = observe(AT_45, answer("failed"), NOW, PollPolicy(5.0, 60.0, failed_grace=0.0))
    assert step.event == "task.failed"
    assert step.state.error


# --- a final state never changes again --------------------------------------------------------

FINALS = [
    pytest.param(
        task(
            status="succeeded",
            upstream_status="finished",
            progress=100,
            updated_at=NOW,
            completed_at=NOW,
        ),
        id="succeeded",
    ),
    pytest.param(
        task(
            status="failed",
            upstream_status="failed",
            error="Content policy violation",
            updated_at=NOW,
            completed_at=NOW,
        ),
        id="failed",
    ),
    pytest.param(
        task(
            status="timed_out",
            upstream_status="processing",
            progress=80,
            error="RELAY_TASK_DEADLINE passed",
            updated_at=NOW,
            completed_at=NOW,
            not_found_since=NOW - 1000,
        ),
        id="timed_out",
    ),
]

LATER = NOW + 10_000


@pytest.mark.parametrize("final", FINALS)
@pytest.mark.parametrize(
    "apply",
    [
        pytest.param(lambda s: observe(s, answer("processing", "10"), LATER, POLICY), id="proc"),
        pytest.param(lambda s: observe(s, FAILED, LATER, POLICY), id="failed"),
        pytest.param(lambda s: observe(s, FINISHED, LATER, POLICY), id="finished"),
        pytest.param(lambda s: fault(s, LATER, POLICY), id="fault"),
        pytest.param(lambda s: not_found(s, LATER, POLICY), id="not-found"),
        pytest.param(lambda s: expire(s, LATER, DEADLINE), id="expire"),
    ],
)
def test_final_state_never_changes(final: TaskState, apply: Any) -> None:
    step: Step = apply(final)
    assert step.state == final
    assert step.event is None
    assert step.delay is None


# --- fault ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "retry_after", "delay"),
    [
        pytest.param(0, None, 5.0, id="first-fault-min"),
        pytest.param(1, None, 10.0, id="second-fault-doubles"),
        pytest.param(2, None, 20.0, id="third-fault"),
        pytest.param(3, None, 40.0, id="fourth-fault"),
        pytest.param(4, None, 60.0, id="fifth-fault-max"),
        pytest.param(40, None, 60.0, id="many-faults-max"),
        pytest.param(0, 30.0, 30.0, id="retry-after-inside"),
        pytest.param(0, 300.0, 300.0, id="retry-after-wins-over-max"),
        pytest.param(0, 3600.0, 3600.0, id="retry-after-hour"),
        pytest.param(3, 7.0, 7.0, id="retry-after-wins-over-backoff"),
        pytest.param(0, 1.0, 5.0, id="retry-after-under-min-gets-min"),
        pytest.param(0, 0.0, 5.0, id="retry-after-zero-gets-min"),
    ],
)
def test_fault(errors: int, retry_after: float | None, delay: float) -> None:
    before = task(**{**_fields(AT_45), "errors": errors})
    step = fault(before, NOW, POLICY, retry_after)
    assert step.event is None
    assert step.delay == pytest.approx(delay)
    assert step.state.errors == errors + 1
    # Nothing a subscriber sees changes.
    assert step.state.status == before.status
    assert step.state.progress == before.progress
    assert step.state.updated_at == before.updated_at


def test_answer_after_faults_resets_the_backoff() -> None:
    state = AT_45
    for i in range(5):
        state = fault(state, NOW + i, POLICY).state
    step = observe(state, answer("processing", "45"), NOW + 10, POLICY)
    assert step.state.errors == 0
    assert step.delay is not None and step.delay <= POLICY.max_interval


# --- not_found --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "limit", "failed"),
    [
        pytest.param(None, 300.0, False, id="first-404"),
        pytest.param(NOW - 100, 300.0, False, id="404-within-limit"),
        pytest.param(NOW - 299.5, 300.0, False, id="404-just-before-limit"),
        pytest.param(NOW - 300, 300.0, True, id="404-at-limit"),
        pytest.param(NOW - 5000, 300.0, True, id="404-long-after-limit"),
        pytest.param(None, 0.0, True, id="limit-zero-fails-at-once"),
    ],
)
def test_not_found(since: float | None, limit: float, failed: bool) -> None:
    policy = PollPolicy(5.0, 60.0, failed_grace=30.0, not_found_limit=limit)
    before = task(**{**_fields(AT_45), "not_found_since": since})
    step = not_found(before, NOW, policy)
    if failed:
        assert step.event == "task.failed"
        assert step.state.status == "failed"
        assert step.delay is None
        assert step.state.completed_at == NOW
        assert step.state.updated_at == NOW
        error = step.state.error or ""
        assert "404" in error
        assert "did not know" in error
    else:
        assert step.event is None
        assert step.state.status == "running"
        assert step.state.not_found_since == (NOW if since is None else since)
        assert step.delay is not None
        assert policy.min_interval <= step.delay <= policy.max_interval
        assert step.state.updated_at == before.updated_at


def test_answer_after_404s_forgets_them() -> None:
    state = not_found(AT_45, NOW, POLICY).state
    state = not_found(state, NOW + 100, POLICY).state
    step = observe(state, answer("processing", "50"), NOW + 200, POLICY)
    assert step.state.not_found_since is None
    # A later 404 starts a new count rather than failing at once.
    again = not_found(step.state, NOW + 1000, POLICY)
    assert again.event is None
    assert again.state.not_found_since == NOW + 1000


# --- expire -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before",
    [
        pytest.param(FRESH, id="never-answered"),
        pytest.param(STAGED, id="queued"),
        pytest.param(AT_45, id="running"),
        pytest.param(observe(AT_45, FAILED, NOW, POLICY).state, id="in-failed-grace"),
        pytest.param(fault(AT_45, NOW, POLICY).state, id="after-faults"),
    ],
)
def test_expire(before: TaskState) -> None:
    later = T0 + DEADLINE + 1
    step = expire(before, later, DEADLINE)
    assert step.event == "task.timed_out"
    assert step.state.status == "timed_out"
    assert step.delay is None
    assert step.state.completed_at == later
    assert step.state.updated_at == later
    assert step.state.failed_since is None
    assert "RELAY_TASK_DEADLINE" in (step.state.error or "")
    assert step.state.progress == before.progress


# --- waiting_at: the schedule's memory of the last answer that was not processing -------------


@pytest.mark.parametrize(
    ("before", "obs", "waiting_at"),
    [
        pytest.param(FRESH, answer("staged"), NOW, id="staged"),
        pytest.param(STAGED, answer("pending"), NOW, id="pending"),
        pytest.param(STAGED, answer("starting"), NOW, id="starting"),
        pytest.param(AT_45, FAILED, NOW, id="failed-held-in-grace"),
        pytest.param(FRESH, answer("processing", "0"), None, id="first-seen-processing"),
        pytest.param(
            task(upstream_status="pending", waiting_at=T0),
            answer("processing", "15"),
            T0,
            id="processing-keeps-it",
        ),
        pytest.param(
            task(upstream_status="pending", waiting_at=T0),
            answer("retrying"),
            T0,
            id="unknown-word-keeps-it",
        ),
    ],
)
def test_waiting_at_is_the_last_answer_not_processing(
    before: TaskState, obs: Observation, waiting_at: float | None
) -> None:
    assert observe(before, obs, NOW, POLICY).state.waiting_at == waiting_at


# --- updated_at moves only with what a subscriber sees ----------------------------------------


def _held() -> TaskState:
    """AT_45 after a first `failed` at NOW: the grace is pending."""
    return observe(AT_45, FAILED, NOW, POLICY).state


@pytest.mark.parametrize(
    ("before", "apply", "at", "changes"),
    [
        pytest.param(
            STAGED, lambda s, t: observe(s, bare("staged"), t, POLICY), NOW, False, id="same"
        ),
        pytest.param(
            AT_45,
            lambda s, t: observe(s, answer("processing", "45"), t, POLICY),
            NOW,
            False,
            id="45-to-45",
        ),
        pytest.param(
            AT_45,
            lambda s, t: observe(s, answer("processing"), t, POLICY),
            NOW,
            False,
            id="no-percentage",
        ),
        pytest.param(
            AT_45,
            lambda s, t: observe(s, answer("processing", "50"), t, POLICY),
            NOW,
            True,
            id="45-to-50",
        ),
        pytest.param(
            STAGED,
            lambda s, t: observe(s, answer("pending"), t, POLICY),
            NOW,
            True,
            id="upstream-word-changes",
        ),
        pytest.param(
            STARTING,
            lambda s, t: observe(s, answer("starting"), t, POLICY),
            NOW,
            True,
            id="model-becomes-known",
        ),
        pytest.param(
            AT_45, lambda s, t: observe(s, FAILED, t, POLICY), NOW, True, id="first-failed"
        ),
        pytest.param(
            _held(),
            lambda s, t: observe(s, FAILED, t, POLICY),
            NOW + 10,
            False,
            id="failed-again-within-grace",
        ),
        pytest.param(AT_45, lambda s, t: observe(s, FINISHED, t, POLICY), NOW, True, id="finished"),
        pytest.param(AT_45, lambda s, t: fault(s, t, POLICY), NOW, False, id="fault"),
        pytest.param(
            AT_45, lambda s, t: fault(s, t, POLICY, 99.0), NOW, False, id="fault-retry-after"
        ),
        pytest.param(AT_45, lambda s, t: not_found(s, t, POLICY), NOW, False, id="first-404"),
        pytest.param(AT_45, lambda s, t: expire(s, t, DEADLINE), NOW, True, id="expire"),
    ],
)
def test_updated_at_changes_only_with_visible_change(
    before: TaskState, apply: Any, at: float, changes: bool
) -> None:
    step: Step = apply(before, at)
    assert before.updated_at != at
    assert step.state.updated_at == (at if changes else before.updated_at)


def _fields(state: TaskState) -> dict[str, Any]:
    return {name: getattr(state, name) for name in state.__struct_fields__}


# --- properties -------------------------------------------------------------------------------

WORDS = ["staged", "pending", "starting", "processing", "finished", "failed", "retrying"]


@st.composite
def answers(draw: st.DrawFn) -> Observation:
    payload: dict[str, Any] = {"task_id": TASK, "status": draw(st.sampled_from(WORDS))}
    pct = draw(
        st.none()
        | st.integers(min_value=-5, max_value=105).map(str)
        | st.sampled_from(["", "45%", "n/a"])
    )
    if pct is not None:
        payload["percentage"] = pct
    if draw(st.booleans()):
        payload["task_type"] = draw(st.sampled_from(["imagine", "seed", "imagine-video"]))
    if draw(st.booleans()):
        payload["error"] = draw(st.sampled_from(["Content policy violation", "Timeout"]))
    if draw(st.booleans()):
        payload["image_url"] = "https://images.journeyapi.com/flux/abc123.png"
    return normalize(payload, TASK)


@st.composite
def policies(draw: st.DrawFn) -> PollPolicy:
    low = draw(st.floats(min_value=0.01, max_value=100.0))
    high = low * draw(st.floats(min_value=1.0, max_value=100.0))
    grace = draw(st.sampled_from([0.0, low / 2, low, high, high * 3]))
    return PollPolicy(min_interval=low, max_interval=high, failed_grace=grace)


@settings(max_examples=600, deadline=None, database=None)
@given(
    steps=st.lists(
        st.tuples(answers(), st.floats(min_value=0.0, max_value=1000.0)), min_size=1, max_size=25
    ),
    policy=policies(),
)
def test_any_sequence_of_answers(
    steps: list[tuple[Observation, float]], policy: PollPolicy
) -> None:
    state = task()
    now = T0
    finals = 0
    for obs, gap in steps:
        now += gap
        step = observe(state, obs, now, policy)
        if state.is_final:
            assert step.event is None
            assert step.delay is None
            assert step.state == state
        elif step.event in FINAL_EVENTS:
            finals += 1
            assert step.state.is_final
            assert step.delay is None
            assert step.state.completed_at == round(now, 3)  # kept to the millisecond
            if step.state.status == "succeeded":
                assert step.state.progress == 100
        else:
            assert not step.state.is_final
            assert step.delay is not None
            assert step.delay >= policy.min_interval
            if step.state.failed_since is None:
                assert step.delay <= policy.max_interval
            changed = (step.state.status, step.state.progress) != (state.status, state.progress)
            assert step.event == ("task.progress" if changed else None)
        assert finals <= 1
        state = step.state
