"""What the upstream's callbacks change in when a task is polled next. Pure.

The upstream's webhook is a signal, never data: its body is not believed (the
shared secret it carries travels in every task-creating call), so a callback
only makes the relay fetch the task at once, and the state comes from that
fetch. Two things follow here, after lifecycle has decided a fetch's step:

- The upstream's webhook may run ahead of its fetch: a fetch made for a
  callback that still answers the old state is repeated shortly, a few times
  (`REFETCH_SHARES`), before the normal schedule takes over. A callback says
  the task changed, so these fetches may come sooner than the minimum interval.
- A task whose every registration says the upstream calls back
  (`upstream_webhook: true`) is polled only as a safety net, every
  `RELAY_POLL_MAX_INTERVAL`, so a lost callback still ends it. The failed
  grace keeps its own timing: the upstream retries failed tasks itself, and
  the grace's fetch is what tells whether it did.
"""

from __future__ import annotations

from relay.core.lifecycle import Step
from relay.core.model import TaskState
from relay.core.schedule import PollPolicy

# When a callback's fetch still answered the old state, the next fetch follows after
# these shares of the minimum interval, one per repeat: 1, 2 and 4 s at the default
# 5 s, spanning the few seconds by which the upstream's webhook may run ahead of
# its fetch (and scaled down with the interval, so tests run fast).
REFETCH_SHARES: tuple[float, ...] = (0.2, 0.4, 0.8)
SIGNALS = len(REFETCH_SHARES)  # re-fetches a callback buys at most


def follow_up(
    before: TaskState,
    step: Step,
    policy: PollPolicy,
    *,
    signals: int,
    calls_back: bool,
) -> tuple[float | None, int | None]:
    """The delay to the next poll after `step`, and the signals left to store.

    `signals` is how many quick re-fetches the latest callback still allows;
    the second value is None when that count stays as it is.
    """
    delay = step.delay
    if delay is None:
        return None, (0 if signals else None)
    news = step.state.updated_at != before.updated_at
    if signals > 0:
        if not news:
            index = min(max(SIGNALS - signals, 0), SIGNALS - 1)
            return REFETCH_SHARES[index] * policy.min_interval, signals - 1
        signals_after: int | None = 0
    else:
        signals_after = None
    if calls_back and step.state.failed_since is None:
        delay = max(delay, policy.max_interval)
    return delay, signals_after
