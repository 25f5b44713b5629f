"""The poll loop: claim due tasks, fetch each from the upstream, write back what changed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from relay.core import callbacks, lifecycle
from relay.core.lifecycle import Step
from relay.core.schedule import PollPolicy
from relay.metrics import Recorder
from relay.store import ClaimedPoll, PollQueue
from relay.store.polls import Outcome
from relay.upstream import FetchResult, UpstreamClient
from workers.claim_loop import ClaimLoop

logger = logging.getLogger("relay.worker.poller")

UNAUTHORIZED_PAUSE = 30.0  # a refused key holds every worker's calls this long, then one probes


def step_for(
    claimed: ClaimedPoll, result: FetchResult, now: float, policy: PollPolicy
) -> tuple[Step, int | None]:
    """What a fetch result does to the claimed task, and the callback signals left. Pure."""
    state = claimed.state
    if result.kind == "ok":
        assert result.observation is not None
        step = lifecycle.observe(state, result.observation, now, policy)
    elif result.kind == "not_found":
        step = lifecycle.not_found(state, now, policy)
    else:
        step = lifecycle.fault(state, now, policy, result.retry_after)
    delay, signals = callbacks.follow_up(
        state, step, policy, signals=claimed.signals, calls_back=claimed.calls_back
    )
    # Built, not dataclasses.replace: that reads the fields' definitions at every call.
    return (step if delay == step.delay else Step(step.state, step.event, delay)), signals


class Poller(ClaimLoop[ClaimedPoll, Outcome]):
    name = "poller"
    ahead = True  # polls are many and short: claims for busy slots cut claims per poll

    def __init__(
        self,
        queue: PollQueue,
        upstream: UpstreamClient,
        *,
        policy: PollPolicy,
        task_deadline: float,
        lease: float,
        concurrency: int,
        recorder: Recorder,
    ) -> None:
        super().__init__(concurrency=concurrency, call_timeout=upstream.timeout)
        self.queue = queue
        self.upstream = upstream
        self.policy = policy
        self.task_deadline = task_deadline
        self.lease = lease
        self.recorder = recorder
        self.full_claim = queue.full_claim
        # Called once an outcome that made events is written (the deliverer's wake-up).
        self.on_events: Callable[[], None] = lambda: None
        # True until this process's first good answer, so that a worker restarted
        # with a fixed key clears a flag another process (or its own past) left.
        self.clear_flag_on_success = True

    async def claim(self, limit: int) -> list[ClaimedPoll]:
        claimed, limited = await self.queue.claim(limit, self.lease, time.time())
        if limited:
            self.recorder.inc("relay_rate_limited_claims_total")
        return claimed

    async def handle(self, claimed: ClaimedPoll) -> None:
        now = time.time()
        state = claimed.state
        if now >= state.deadline_at:
            step = lifecycle.expire(state, now, self.task_deadline)
            outcome = Outcome(
                claimed.task_id, claimed.raw_state, step, claimed.polls, claimed.lease,
                count_poll=False, place=claimed.place,
            )  # fmt: skip
            self.writer.add(outcome)
            return
        result = await self.upstream.fetch(claimed.task_id, now)
        after = time.time()
        self.recorder.inc("relay_polls_total", result.detail or result.kind)
        self.recorder.observe("relay_upstream_duration_seconds", after - now)
        await self._react(claimed, result, after)
        step, signals = step_for(claimed, result, after, self.policy)
        self.writer.add(
            Outcome(
                claimed.task_id,
                claimed.raw_state,
                step,
                claimed.polls + 1,
                claimed.lease,
                signals_after=signals,
                place=claimed.place,
                before=claimed.state,
            )
        )

    async def _react(self, claimed: ClaimedPoll, result: FetchResult, now: float) -> None:
        """What a fault means for every worker, beyond this one task."""
        if result.kind == "ok":
            if self.clear_flag_on_success:
                self.clear_flag_on_success = False
                if await self.queue.clear_unauthorized():
                    logger.warning("the upstream accepts the API key again")
            return
        if result.kind == "unauthorized":
            self.clear_flag_on_success = True
            await self.queue.mark_unauthorized(now, UNAUTHORIZED_PAUSE)
            logger.error(
                "the upstream refused RELAY_UPSTREAM_API_KEY (%s); holding all polls for %g s",
                result.detail,
                UNAUTHORIZED_PAUSE,
            )
            return
        if result.kind == "rate_limited":
            pause = self.policy.min_interval if result.retry_after is None else result.retry_after
            await self.queue.pause_upstream(now + pause)
        if result.kind != "not_found":
            logger.warning(
                "upstream fetch of %s: %s", claimed.task_id, result.detail or result.kind
            )

    async def write(self, outcomes: list[Outcome]) -> None:
        applied = await self.queue.apply(outcomes, time.time())
        for task_id, tenant in applied.skipped:
            self.recorder.inc("relay_write_errors_total", "registration")
            logger.error(
                "a registration of %s could not be read; its tenant got no delivery",
                task_id,
                extra={"task_id": task_id, "tenant": tenant},
            )
        made_events = False
        for outcome, reply in zip(outcomes, applied.replies, strict=True):
            if reply == "error":
                # Set aside: the others in the batch were written; its lease brings it back.
                self.recorder.inc("relay_write_errors_total", "outcome")
                logger.error(
                    "the outcome for %s could not be written; it will be polled again",
                    outcome.task_id,
                    extra={"task_id": outcome.task_id},
                )
            elif reply != "ok":
                logger.info("outcome for %s not written: %s", outcome.task_id, reply)
            elif outcome.step.event:
                made_events = True
                self.recorder.inc("relay_events_total", outcome.step.event)
                logger.info(
                    "task event", extra={"task_id": outcome.task_id, "event": outcome.step.event}
                )
        if made_events:
            self.on_events()
