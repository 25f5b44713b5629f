"""What one answer (or one failure to get one) does to a task.

Each function takes the task's current state and the clock and returns a
`Step`: the new state, the event it makes (if any), and when to poll next
(None once the task is final). No I/O: the worker and the upstream-webhook
route both feed their answers through here, so they cannot disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from relay.core.model import FINAL_EVENT_FOR_STATUS, Observation, Status, TaskState
from relay.core.schedule import PollPolicy, backoff, clamp, next_delay, not_processing


class Step(msgspec.Struct, frozen=True):
    """What one answer (or its absence) does to a task. A Struct: one is built per poll."""

    state: TaskState
    event: str | None  # an event type, or None when nothing a subscriber sees changed
    delay: float | None  # seconds to the next poll; None when final


def observe(state: TaskState, obs: Observation, now: float, policy: PollPolicy) -> Step:
    """Apply one well-formed answer."""
    now = _millis(now)
    if state.is_final:
        return Step(state, None, None)
    if obs.status == "failed" and not _grace_over(state, now, policy):
        # The upstream retries failed tasks itself: wait out the grace before believing it.
        failed_since = state.failed_since if state.failed_since is not None else now
        held = _merge(
            state, obs, now, status=state.status, progress=state.progress, error=state.error
        )
        held = msgspec.structs.replace(held, failed_since=failed_since)
        wait = max(policy.min_interval, failed_since + policy.failed_grace - now)
        # A retry may start at once and end within the grace: poll at the schedule's
        # own pace meanwhile, believing the failure only once the grace is over.
        return Step(held, None, min(wait, next_delay(held, now, policy)))

    progress = obs.progress if obs.progress is not None else state.progress
    new = _merge(state, obs, now, status=obs.status, progress=progress, error=obs.error)
    new = msgspec.structs.replace(new, failed_since=None)
    if new.is_final:
        new = msgspec.structs.replace(new, completed_at=now)
        return Step(new, FINAL_EVENT_FOR_STATUS[new.status], None)
    changed = new.status != state.status or new.progress != state.progress
    return Step(new, "task.progress" if changed else None, next_delay(new, now, policy))


def fault(
    state: TaskState, now: float, policy: PollPolicy, retry_after: float | None = None
) -> Step:
    """A poll that taught nothing: an error answer, a bad body, a timeout."""
    now = _millis(now)
    if state.is_final:
        return Step(state, None, None)
    errors = state.errors + 1
    new = msgspec.structs.replace(state, errors=errors)
    delay = backoff(errors, policy)
    if retry_after is not None:
        # A Retry-After wins over the maximum interval, never over the minimum.
        delay = max(policy.min_interval, retry_after)
    return Step(new, None, delay)


def not_found(state: TaskState, now: float, policy: PollPolicy) -> Step:
    """The upstream does not know the task (404): retry for a while, then fail it."""
    now = _millis(now)
    if state.is_final:
        return Step(state, None, None)
    since = state.not_found_since if state.not_found_since is not None else now
    if now - since >= policy.not_found_limit:
        new = msgspec.structs.replace(
            state,
            status="failed",
            upstream_status=state.upstream_status,
            error=f"The upstream did not know this task for {policy.not_found_limit:g} s (404)",
            updated_at=now,
            completed_at=now,
        )
        return Step(new, "task.failed", None)
    step = fault(state, now, policy)
    return Step(msgspec.structs.replace(step.state, not_found_since=since), None, step.delay)


def expire(state: TaskState, now: float, deadline_seconds: float) -> Step:
    """The relay's deadline passed before the task ended."""
    now = _millis(now)
    if state.is_final:
        return Step(state, None, None)
    passed = datetime.fromtimestamp(state.deadline_at, UTC).isoformat().replace("+00:00", "Z")
    new = msgspec.structs.replace(
        state,
        status="timed_out",
        failed_since=None,
        error=(
            f"RELAY_TASK_DEADLINE passed: the task did not end within {deadline_seconds:g} s "
            f"of its first registration (at {passed})"
        ),
        updated_at=now,
        completed_at=now,
    )
    return Step(new, "task.timed_out", None)


def _millis(now: float) -> float:
    """Times are kept to the millisecond: shorter to store, and what listings sort by."""
    return round(now, 3)


def _grace_over(state: TaskState, now: float, policy: PollPolicy) -> bool:
    if policy.failed_grace <= 0:
        return True
    return state.failed_since is not None and now - state.failed_since >= policy.failed_grace


def _merge(
    state: TaskState,
    obs: Observation,
    now: float,
    *,
    status: Status,
    progress: int | None,
    error: str | None,
) -> TaskState:
    """The state with the answer's fields taken in; schedule memory kept up to date."""
    upstream_changed = obs.upstream_status != state.upstream_status
    new = msgspec.structs.replace(
        state,
        status=status,
        upstream_status=obs.upstream_status,
        progress=progress,
        task_type=obs.task_type or state.task_type,
        model=obs.model or state.model,
        result=obs.result,
        error=error,
        errors=0,
        not_found_since=None,
        status_since=now if upstream_changed else state.status_since,
        waiting_at=now if not_processing(obs) else state.waiting_at,
    )
    if _visible(new) != _visible(state):
        new = msgspec.structs.replace(new, updated_at=now)
    return new


def _visible(state: TaskState) -> tuple[object, ...]:
    return (
        state.status,
        state.upstream_status,
        state.progress,
        state.task_type,
        state.model,
        state.result,
        state.error,
    )


__all__ = ["Step", "clamp", "expire", "fault", "not_found", "observe"]
