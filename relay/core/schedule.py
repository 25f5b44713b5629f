"""When to poll a task next, from what its past answers taught.

A pure function of the task's state and the clock. The schedule never goes
below the minimum interval nor above the maximum (the failed grace and a
`Retry-After` may go beyond the maximum; lifecycle handles both), and a final
task has no next poll (lifecycle answers None for it).

The aim is the fewest upstream calls for the fastest news of a task's end
(`python -m bench.schedule_sim` measures both against a fixed 5 s schedule):

- Waiting (`staged`, `pending`, `starting`): the longer a task has waited, the
  sparser the polls, since a relax queue holds tasks for minutes; but never
  sparser than the shortest typical duration of its type, so a task that leaves
  the queue is seen running before it can have finished.
- Running with a moving percentage: the last two readings give a rate, the rate
  a window for the end, widened by the readings' rounding and by a share of the
  time left (progress is not always linear). A narrow window is polled just after
  its end. A wide one first gets a refining reading shortly before its start
  (earlier when the percentage is speeding up), which lengthens the baseline and
  narrows the next window; that reading never comes later than the type's
  typical durations allow, nor further ahead than twice the baseline the rate
  was measured over.
- Running with one reading: its share done of the type's typical durations says
  when the second can come while there is still time to aim.
- Running without any percentage: nothing to aim with; the first poll comes at
  the shortest typical duration (less a margin for the unseen start), then every
  minimum interval.
- A poll that finds the task still running past the window, or a window too
  close to aim at, falls back to the minimum interval: an estimate is a guess,
  the minimum interval always works.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from relay.core.model import TaskState

# Typical processing times from the upstream's notes, matched as substrings of the
# open-ended task type ("imagine-video-extend" is a video); anything else is
# imagine-like. Peak hours run longer than these.
_TYPICAL_RANGES: tuple[tuple[str, float, float], ...] = (
    ("video", 60.0, 300.0),
    ("seed", 5.0, 15.0),
    ("describe", 10.0, 30.0),
    ("shorten", 10.0, 30.0),
    ("upscale", 15.0, 45.0),
    ("faceswap", 15.0, 45.0),
)
_DEFAULT_RANGE = (30.0, 90.0)

# Upstream words for a task that has not started processing.
_WAITING_WORDS = frozenset({"staged", "pending", "starting"})

# Tuned with bench/schedule_sim.py (shares, seconds or percentage points).
QUEUE_GROWTH = 1.0  # waiting: the next poll after this share of the wait so far,
QUEUE_CAP = 1.0  # but after at most this share of the type's shortest typical duration
FIRST_READING = 0.5  # one reading: the second after this share of the least time left
UNSEEN_START = 0.25  # no percentage: processing may have begun this share of the
# shortest typical duration before it was first seen
QUANTUM = 1.0  # points a reading may lag the truth (percentages are rounded down)
SLACK = 0.06  # share of the time left an estimate may be off (progress is not linear)
NARROW = 2.5  # seconds, beyond one point's time: a window this narrow is aimed at
AFTER = 0.25  # seconds after the latest plausible end
REFINE = 0.6  # a wider window is refined at this share of the time to its start,
LEAD = 6.0  # or this many seconds before its start when that is later and the
SPEEDING_UP = 1.2  # percentage is not speeding up by this factor;
EXTRAPOLATE = 2.0  # at most this many times the rate's baseline ahead,
MIN_POINTS = 5.0  # and only if the percentage should move this many points by then


@dataclasses.dataclass(frozen=True)
class PollPolicy:
    min_interval: float = 5.0
    max_interval: float = 120.0
    failed_grace: float = 30.0
    not_found_limit: float = 300.0  # how long an unknown task is retried before it fails


class Window(NamedTuple):
    """When a running task may end: seconds from now to the earliest and the latest end."""

    earliest: float
    latest: float
    point: float | None = None  # seconds per percentage point, when measured from a rate
    baseline: float = 0.0  # seconds between the two readings the rate comes from
    steady: bool = True  # False when the percentage speeds up: the end may come sooner


def typical_range(task_type: str | None) -> tuple[float, float]:
    """The shortest and the longest typical processing time of a task type, in seconds."""
    lowered = (task_type or "").lower()
    for needle, low, high in _TYPICAL_RANGES:
        if needle in lowered:
            return low, high
    return _DEFAULT_RANGE


def typical_duration(task_type: str | None) -> float:
    """The middle of the type's typical range, in seconds."""
    low, high = typical_range(task_type)
    return (low + high) / 2


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


def estimate_window(state: TaskState, now: float) -> Window | None:
    """When the running task may end, from its percentage or its type; None if nothing says."""
    if state.status_since is None or is_waiting(state):
        return None
    low, high = typical_range(state.task_type)
    rate = _rate(state)
    if rate is not None:
        at, progress, span, elapsed = rate
        left = max(0.0, 100.0 - progress)
        since = now - at
        # Readings are rounded down: the true movement is within a quantum of the measured
        # one, and the true progress up to a quantum above the last reading.
        earliest = max(0.0, left - QUANTUM) * elapsed / (span + QUANTUM) * (1 - SLACK) - since
        latest = left * elapsed / max(span - QUANTUM, span / 2) * (1 + SLACK) - since
        steady = not _speeding_up(state, span / elapsed)
        return Window(earliest, latest, elapsed / span, elapsed, steady)
    if state.progress is not None and state.progress_at is not None:
        # One reading while processing: its share left of the typical time range.
        since = now - max(state.progress_at, state.status_since)
        left = max(0.0, 100.0 - state.progress) / 100.0
        return Window(left * low - since, left * high - since)
    # No percentage at all: processing began before it was first seen.
    since = now - state.status_since + low * UNSEEN_START
    return Window(low - since, high - since)


def estimate_remaining(state: TaskState, now: float) -> float | None:
    """Seconds until the running task is expected to finish (the window's middle), or None."""
    window = estimate_window(state, now)
    if window is None:
        return None
    return (window.earliest + window.latest) / 2


def _rate(state: TaskState) -> tuple[float, int, float, float] | None:
    """(time of the last reading, its value, points moved, seconds taken) or None.

    From the last two different readings while processing. The value before the last
    change still showed when processing was first seen, so a reading from the queue
    counts from that moment.
    """
    if (
        state.progress is None
        or state.progress_at is None
        or state.prev_progress is None
        or state.prev_progress_at is None
        or state.status_since is None
        or state.progress_at <= state.status_since
    ):
        return None
    span = float(state.progress - state.prev_progress)
    elapsed = state.progress_at - max(state.prev_progress_at, state.status_since)
    if span <= 0 or elapsed <= 0:
        return None
    return state.progress_at, state.progress, span, elapsed


def _speeding_up(state: TaskState, speed: float) -> bool:
    """The last rate beats any the task can have had before the older reading.

    Processing was first seen at `status_since` with a percentage of 0 or more, so up to
    the older reading the task moved at most that reading's value over that time.
    """
    if (
        state.prev_progress is None
        or state.prev_progress_at is None
        or state.status_since is None
        or state.prev_progress_at <= state.status_since
    ):
        return False
    before = state.prev_progress / (state.prev_progress_at - state.status_since)
    return speed > before * SPEEDING_UP


def next_delay(state: TaskState, now: float, policy: PollPolicy) -> float:
    """Seconds from `now` to the next poll of a task that is not final."""
    if state.errors:
        return backoff(state.errors, policy)
    if is_waiting(state):
        return _waiting_delay(state, now, policy)
    window = estimate_window(state, now)
    if window is None or window.latest <= 0:
        # Nothing to go by, or past every estimate: the minimum interval always works.
        return policy.min_interval
    if window.point is not None:
        return _aim(state, window, now, policy)
    if state.progress is not None:
        # One reading: take the second early enough to aim at the end with the rate.
        return clamp(window.earliest * FIRST_READING, policy)
    # No percentage: be there when the earliest end may come, then every minimum interval.
    return clamp(window.earliest, policy)


def _aim(state: TaskState, window: Window, now: float, policy: PollPolicy) -> float:
    """The next poll of a task whose end was estimated from a percentage rate."""
    assert window.point is not None
    if window.latest - window.earliest <= NARROW + window.point:
        return clamp(window.latest + AFTER, policy)
    if window.steady:
        aim = max(window.earliest * REFINE, window.earliest - LEAD)
    else:
        aim = window.earliest * REFINE
    # A rate from early readings may be far off (a slow start, coarse steps): a refining
    # reading comes no later than the type's typical durations allow, nor far beyond the
    # time the rate was measured over.
    _, high = typical_range(state.task_type)
    since = now - state.status_since if state.status_since is not None else 0.0
    cap = (high - since) * REFINE if high > since else window.earliest
    aim = min(aim, cap, window.baseline * EXTRAPOLATE)
    if aim < max(policy.min_interval, MIN_POINTS * window.point):
        # Too close for a reading to narrow the window: be there at its start, then
        # every minimum interval.
        aim = min(window.earliest, cap)
    return clamp(aim, policy)


def _waiting_delay(state: TaskState, now: float, policy: PollPolicy) -> float:
    """Sparser polls the longer a task waits, capped so that leaving the queue is noticed."""
    since = state.status_since if state.status_since is not None else now
    waited = max(0.0, now - since)
    low, _ = typical_range(state.task_type)
    return clamp(min(waited * QUEUE_GROWTH, low * QUEUE_CAP), policy)
