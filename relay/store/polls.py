"""The poll schedule: due tasks claimed in batches under a lease, outcomes written back."""

from __future__ import annotations

import dataclasses
import time
import uuid

from redis.asyncio import Redis

from relay.core.lifecycle import Step
from relay.core.model import Event, TaskState
from relay.store import keys, scripts
from relay.store.codec import dump, load_state
from relay.store.redis import to_ms


@dataclasses.dataclass(frozen=True)
class ClaimedPoll:
    task_id: str
    raw_state: str  # as stored: the write-back is refused if it changed meanwhile
    state: TaskState
    polls: int
    lease: int
    calls_back: bool = False  # every registration says the upstream calls back
    signals: int = 0  # quick re-fetches the latest upstream callback still allows


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One step to write: from a poll, with its claim (or, in benchmarks, without one)."""

    task_id: str
    raw_state: str
    step: Step
    polls_after: int
    lease: int | None = None  # None: not from a claim
    count_poll: bool = True
    signals_after: int | None = None  # None: the stored count stays as it is


@dataclasses.dataclass(frozen=True)
class Applied:
    replies: list[str]  # one per outcome, in order
    skipped: list[tuple[str, str]]  # (task id, tenant) of registrations that could not be read


class PollQueue:
    def __init__(self, redis: Redis, *, rate: float, retention: float) -> None:
        self.redis = redis
        self.rate = rate
        # A fifth of a second of calls at most at once, so polls are spread, not bursty.
        self.burst = max(1.0, rate / 5)
        self.retention = max(1, to_ms(retention))  # ms: settings accept fractions
        self._claim = redis.register_script(scripts.CLAIM_POLLS)
        self._apply = redis.register_script(scripts.APPLY)
        self._signal = redis.register_script(scripts.SIGNAL)

    async def claim(self, limit: int, lease: float, now: float) -> tuple[list[ClaimedPoll], bool]:
        """Due tasks, and whether the shared rate limit held back others that were due."""
        reply = await self._claim(
            args=[keys.PREFIX, to_ms(now), limit, to_ms(lease), self.rate, self.burst]
        )
        lease_ms, flat, limited = int(reply[0]), reply[1], bool(reply[2])
        claimed: list[ClaimedPoll] = []
        orphans: list[str] = []
        for i in range(0, len(flat), 5):
            task_id, raw_state, polls, others, signals = flat[i : i + 5]
            if not raw_state:
                orphans.append(task_id)  # its state expired: nothing left to poll
                continue
            claimed.append(
                ClaimedPoll(
                    task_id,
                    raw_state,
                    load_state(raw_state),
                    int(polls),
                    lease_ms,
                    # No count at all: a task registered before callbacks were known.
                    calls_back=others == "0",
                    signals=int(signals or 0),
                )
            )
        if orphans:
            await self.redis.zrem(keys.DUE, *orphans)
        return claimed, limited

    async def apply(self, outcomes: list[Outcome], now: float) -> Applied:
        """Write outcomes in one script call; each answers 'ok', 'lost', 'conflict' or
        'error' (that one failed; the others were written all the same)."""
        if not outcomes:
            return Applied([], [])
        args: list[str | int | float] = [keys.PREFIX, to_ms(now), self.retention]
        for outcome in outcomes:
            args.extend(self._args(outcome, now))
        replies, skipped = await self._apply(args=args)
        pairs = (str(s).split(" ", 1) for s in skipped)
        return Applied([str(r) for r in replies], [(task_id, tenant) for task_id, tenant in pairs])

    def _args(self, outcome: Outcome, now: float) -> list[str | int | float]:
        step = outcome.step
        state = step.state
        next_due: str | int = ""
        if step.delay is not None:
            next_due = to_ms(min(now + step.delay, state.deadline_at))
        event_id, event_json = "", ""
        if step.event is not None:
            event_id = "evt_" + uuid.uuid4().hex
            event_json = dump(
                Event(type=step.event, at=now, state=state, polls=outcome.polls_after)
            )
        return [
            outcome.task_id,
            "" if outcome.lease is None else outcome.lease,
            outcome.raw_state,
            dump(state),
            1 if outcome.count_poll else 0,
            next_due,
            step.event or "",
            event_id,
            event_json,
            "" if outcome.signals_after is None else outcome.signals_after,
        ]

    async def signal(self, task_id: str, now: float, signals: int) -> bool:
        """The upstream called back for a task: poll it now. False if nobody tracks it."""
        reply = await self._signal(args=[keys.PREFIX, task_id, to_ms(now), signals])
        return str(reply) == "signalled"

    async def pause_upstream(self, until: float) -> None:
        """Hold every worker's calls to the upstream until `until` (a Retry-After)."""
        # The key outlives the pause a little; the claim script compares the time itself.
        await self.redis.set(
            keys.UPSTREAM_PAUSED, to_ms(until), px=max(1, to_ms(until - time.time())) + 1000
        )

    async def mark_unauthorized(self, now: float, pause: float) -> None:
        """The upstream refused the key: every worker holds its calls for `pause`."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.UPSTREAM_UNAUTHORIZED, to_ms(now))
            pipe.set(keys.UPSTREAM_PAUSED, to_ms(now + pause), px=to_ms(pause) + 1000)
            await pipe.execute()

    async def clear_unauthorized(self) -> bool:
        """Clear the refused-key flag; True if it was set."""
        return bool(await self.redis.delete(keys.UPSTREAM_UNAUTHORIZED))

    async def unauthorized_since(self) -> float | None:
        raw = await self.redis.get(keys.UPSTREAM_UNAUTHORIZED)
        return int(raw) / 1000 if raw else None
