"""When to poll a task next, from what its past answers taught.

A pure function of the task's state and the clock. The schedule never goes
below the minimum interval nor above the maximum (except where the contract
says a grace or a `Retry-After` wins), and a final task has no next poll.
"""

from __future__ import annotations

import dataclasses

from relay.core.model import TaskState

# Typical durations from the upstream's notes, matched as substrings of the
# open-ended task type ("imagine-video-extend" is a video).
_TYPICAL_SECONDS: tuple[tuple[str, float], ...] = (
    ("video", 180.0),
    ("seed", 10.0),
    ("describe", 20.0),
    ("shorten", 20.0),
    ("upscale", 30.0),
    ("faceswap", 30.0),
)
_DEFAULT_TYPICAL = 60.0


@dataclasses.dataclass(frozen=True)
class PollPolicy:
    min_interval: float = 5.0
    max_interval: float = 120.0
    failed_grace: float = 30.0
    not_found_limit: float = 300.0  # how long an unknown task is retried before it fails


def typical_duration(task_type: str | None) -> float:
    lowered = (task_type or "").lower()
    for needle, seconds in _TYPICAL_SECONDS:
        if needle in lowered:
            return seconds
    return _DEFAULT_TYPICAL


def clamp(delay: float, policy: PollPolicy) -> float:
    return min(policy.max_interval, max(policy.min_interval, delay))


def backoff(attempt: int, policy: PollPolicy) -> float:
    """Delay after `attempt` consecutive polls that taught nothing (1-based)."""
    return clamp(policy.min_interval * 2 ** min(max(attempt - 1, 0), 16), policy)


def estimate_remaining(state: TaskState, now: float) -> float | None:
    """Seconds until the running task is expected to finish, or None if nothing says."""
    if state.progress is not None and state.progress_at is not None and state.progress < 100:
        rate = _progress_rate(state)
        if rate is not None and rate > 0:
            return (100 - state.progress) / rate - (now - state.progress_at)
    if state.status_since is not None:
        return typical_duration(state.task_type) - (now - state.status_since)
    return None


def _progress_rate(state: TaskState) -> float | None:
    """Percent per second, from the last two progress changes, or from the start of running."""
    assert state.progress is not None and state.progress_at is not None
    if state.prev_progress is not None and state.prev_progress_at is not None:
        elapsed = state.progress_at - state.prev_progress_at
        if elapsed > 0:
            return (state.progress - state.prev_progress) / elapsed
    if state.status_since is not None and state.progress_at > state.status_since:
        return state.progress / (state.progress_at - state.status_since)
    return None


def next_delay(state: TaskState, now: float, policy: PollPolicy) -> float:
    """Seconds from `now` to the next poll of a task that is not final."""
    if state.errors:
        return backoff(state.errors, policy)
    if state.status == "queued":
        # Queue waits are long-tailed (a relax queue adds minutes): the longer a
        # task has waited, the less each extra poll is likely to find it moved.
        waited = now - (state.status_since if state.status_since is not None else now)
        return clamp(waited * 0.25, policy)
    remaining = estimate_remaining(state, now)
    if remaining is None:
        return policy.min_interval
    # Aim just after the expected end; the minimum interval then takes over.
    return clamp(remaining + 0.5, policy)
