"""When to try a call again: exponential backoff with full jitter. Pure."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """`attempts` in all (1: never retry); the n-th wait is drawn from [0, base * 2**n],
    at most `max_delay`, and never shorter than the relay's own `Retry-After`."""

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    rand: Callable[[], float] = dataclasses.field(default=random.random, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (`attempt` counts from 0)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0**attempt)
        # Full jitter: clients that failed together do not come back together.
        drawn = ceiling * self.rand()
        if retry_after is not None:
            drawn = max(drawn, min(retry_after, self.max_delay))
        return drawn

    def allows(self, attempt: int) -> bool:
        """Whether another attempt may follow attempt `attempt`."""
        return attempt + 1 < self.attempts


NO_RETRY = RetryPolicy(attempts=1)


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header in seconds; the HTTP-date form is ignored (the relay sends none)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
