"""What to do after one webhook attempt. Pure."""

from __future__ import annotations

import dataclasses

from relay.core.model import Ending

RETRY_AFTER_CAP = 3600.0  # a receiver's Retry-After is honoured up to an hour
JITTER = 0.1  # up to +10% on each retry delay, so retries of many events spread out


@dataclasses.dataclass(frozen=True)
class Decision:
    ending: Ending
    delay: float | None = None  # seconds to the next attempt, for a retry


def decide(
    status_code: int | None,
    attempts_made: int,
    schedule: tuple[float, ...],
    *,
    retry_after: float | None = None,
    jitter: float = 0.0,
) -> Decision:
    """`attempts_made` counts this series' attempts including the one just made;
    `jitter` is a number in [0, 1) the caller draws."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision("delivered")
    if status_code == 410:
        return Decision("gone")
    if attempts_made > len(schedule):
        return Decision("failed")
    delay = schedule[attempts_made - 1] * (1 + JITTER * jitter)
    if retry_after is not None and status_code in (429, 503):
        delay = min(max(retry_after, 0.0), RETRY_AFTER_CAP)
    return Decision("retry", delay)
