"""When to poll a task next: in time to learn its end no later than a client polling it
every minimum interval would, and not while no end can come.

A pure function of the task's state and the clock. The schedule never goes below the
minimum interval nor above the maximum (a `Retry-After` may go beyond the maximum, and
within the failed grace lifecycle polls at this schedule's pace until the grace is over),
and a final task has no next poll (lifecycle answers None for it).
`python -m bench.schedule_sim` measures it against fixed 5 s polling.

Why the rules are what they are:

- Progress is no forecast. The upstream's percentage moves in a handful of uneven jumps,
  sits on one value for long stretches and may go from any value straight to `finished`
  (NOTES.md), so neither a rate nor a reading says when the end comes. Near a possible end
  the only poll that is never later than a client's own is one every minimum interval:
  wherever an end is plausible, that is the cadence.
- Calls are saved only where an end is impossible. A task that is waiting (`staged`,
  `pending`, `starting`, or the upstream's retry after a `failed`) cannot end before it
  has processed for the shortest time its type takes. So a waiting task is polled once
  per that span (a relax queue holds tasks for minutes), and a task seen processing is
  left alone until that span has passed since it was last seen waiting
  (`TaskState.waiting_at`): it began processing after that answer. The span is the
  shortest documented duration of the type less a margin (`EARLY`), since the documented
  ranges are typical, not bounds; a type the notes do not time gets no quiet span.
- Polls keep to the registration's grid (registration + k x minimum interval): a quiet
  span ends at the first grid point at or after it, the first poll that can see an end,
  and the polls at the minimum interval that follow stay on the grid. A client that polls
  every minimum interval from registration then learns nothing before the relay does, task
  by task, not only on average: near a possible end the relay makes every one of its polls,
  and it skips only grid points before which no end can have come.
- Faults back off exponentially; an estimate or a saving never outranks a fault.
"""

from __future__ import annotations

import dataclasses
import math

from relay.core.model import Observation, TaskState

# The upstream's documented shortest processing times, matched as substrings of the
# open-ended task type ("imagine-video-extend" is a video). Order matters: the first match
# wins, so videos are told from imagines.
_SHORTEST: tuple[tuple[str, float], ...] = (
    ("video", 60.0),
    ("seed", 5.0),
    ("describe", 10.0),
    ("shorten", 10.0),
    ("upscale", 15.0),
    ("faceswap", 15.0),
    ("imagine", 30.0),
    ("reroll", 30.0),
    ("variation", 30.0),
    ("blend", 30.0),
)

# Upstream words for a task that has not started processing, and the word of one whose
# processing stopped (the upstream may retry it from the start).
_WAITING_WORDS = frozenset({"staged", "pending", "starting"})
_STOPPED_WORD = "failed"

# A task may run this share of its type's documented shortest time and no faster: the
# documented ranges are typical ones, peers run a little faster off-peak.
EARLY = 0.75

_SLACK = 1e-6


@dataclasses.dataclass(frozen=True)
class PollPolicy:
    min_interval: float = 5.0
    max_interval: float = 120.0
    failed_grace: float = 30.0
    not_found_limit: float = 300.0  # how long an unknown task is retried before it fails


def shortest_run(task_type: str | None) -> float:
    """Seconds of processing before which a task of this type cannot have finished.

    0 for a type the notes do not time: nothing is known, so nothing is saved.
    """
    lowered = (task_type or "").lower()
    for needle, low in _SHORTEST:
        if needle in lowered:
            return low * EARLY
    return 0.0


def clamp(delay: float, policy: PollPolicy) -> float:
    return min(policy.max_interval, max(policy.min_interval, delay))


def backoff(attempt: int, policy: PollPolicy) -> float:
    """Delay after `attempt` consecutive polls that taught nothing (1-based)."""
    return clamp(policy.min_interval * 2 ** min(max(attempt - 1, 0), 16), policy)


def is_waiting(state: TaskState) -> bool:
    """The task has not started processing: queued, or its model is warming up."""
    if state.status == "queued":
        return True
    return (state.upstream_status or "").strip().lower() in _WAITING_WORDS


def not_processing(obs: Observation) -> bool:
    """The answer says the task is not processing now: whatever processing ends it is to come."""
    word = obs.upstream_status.strip().lower()
    return obs.status == "queued" or word in _WAITING_WORDS or word == _STOPPED_WORD


def quiet_until(state: TaskState) -> float | None:
    """The moment before which the task cannot end, or None when nothing rules an end out."""
    run = shortest_run(state.task_type)
    if run <= 0 or state.waiting_at is None:
        return None
    return state.waiting_at + run


def next_delay(state: TaskState, now: float, policy: PollPolicy) -> float:
    """Seconds from `now` to the next poll of a task that is not final."""
    if state.errors:
        return backoff(state.errors, policy)
    if is_waiting(state):
        # Seen waiting now: processing, and so any end, is at least a shortest run away.
        return _on_grid(state, now, shortest_run(state.task_type), policy)
    until = quiet_until(state)
    if until is None:
        return policy.min_interval
    return _on_grid(state, now, until - now, policy)


def _on_grid(state: TaskState, now: float, quiet: float, policy: PollPolicy) -> float:
    """The first poll on the registration's grid that can see an end after `quiet` seconds.

    An end cannot come sooner, so no poll before that grid point can see one, and a client
    polling on the grid learns it there at the earliest too. Within the maximum interval;
    never sooner than the minimum.
    """
    if quiet <= policy.min_interval:
        return policy.min_interval
    step = policy.min_interval
    elapsed = now - state.registered_at
    # A microsecond of slack: times are kept to the millisecond, floats are not exact.
    if quiet <= policy.max_interval:
        on_grid = math.ceil((elapsed + quiet - _SLACK) / step) * step - elapsed
        if math.isfinite(on_grid) and on_grid <= policy.max_interval:
            return max(policy.min_interval, on_grid)
    # Capped by the maximum: the last grid point within it.
    on_grid = math.floor((elapsed + policy.max_interval + _SLACK) / step) * step - elapsed
    if math.isfinite(on_grid) and on_grid >= policy.min_interval - _SLACK:
        return clamp(on_grid, policy)
    return clamp(quiet, policy)
