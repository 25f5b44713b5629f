"""The poll loop: claim due tasks, fetch each from the upstream, write back what changed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from relay.core import lifecycle
from relay.core.lifecycle import Step
from relay.core.schedule import PollPolicy
from relay.metrics import Recorder
from relay.store import ClaimedPoll, PollQueue
from relay.store.polls import Outcome
from relay.upstream import FetchResult, UpstreamClient
from workers.batching import BatchWriter

logger = logging.getLogger("relay.worker.poller")

IDLE_SLEEP = 0.05  # seconds between claims when nothing is due
ERROR_SLEEP = 1.0  # after Redis failed to answer a claim
UNAUTHORIZED_PAUSE = 30.0  # a refused key holds every worker's calls this long, then one probes


def step_for(claimed: ClaimedPoll, result: FetchResult, now: float, policy: PollPolicy) -> Step:
    """What a fetch result does to the claimed task. Pure."""
    state = claimed.state
    if result.kind == "ok":
        assert result.observation is not None
        return lifecycle.observe(state, result.observation, now, policy)
    if result.kind == "not_found":
        return lifecycle.not_found(state, now, policy)
    return lifecycle.fault(state, now, policy, result.retry_after)


class Poller:
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
        self.queue = queue
        self.recorder = recorder
        # True until this process's first good answer, so that a worker restarted
        # with a fixed key clears a flag another process (or its own past) left.
        self.clear_flag_on_success = True
        self.upstream = upstream
        self.policy = policy
        self.task_deadline = task_deadline
        self.lease = lease
        self.concurrency = concurrency
        self.in_flight = 0
        self.writer: BatchWriter[Outcome] = BatchWriter(self._write)

    async def run(self, stopping: asyncio.Event) -> None:
        # The writer has its own stop: it must outlive the calls still in flight.
        writer_stop = asyncio.Event()
        writer = asyncio.create_task(self.writer.run(writer_stop))
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not stopping.is_set():
                free = self.concurrency - self.in_flight
                if free <= 0:
                    await asyncio.sleep(0.005)
                    continue
                try:
                    claimed, limited = await self.queue.claim(
                        min(free, 500), self.lease, time.time()
                    )
                except Exception as exc:  # Redis away: wait and try again
                    logger.warning("claim failed: %s", exc)
                    await _sleep_unless(stopping, ERROR_SLEEP)
                    continue
                if limited:
                    self.recorder.inc("relay_rate_limited_claims_total")
                for item in claimed:
                    self.in_flight += 1
                    task = asyncio.create_task(self._poll(item))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if len(claimed) < min(free, 500):
                    await _sleep_unless(stopping, IDLE_SLEEP)
        finally:
            # Finish what was started (bounded by the upstream timeout), then write it.
            if tasks:
                await asyncio.wait(tasks, timeout=self.upstream.timeout + 1)
            writer_stop.set()
            await writer

    async def _poll(self, claimed: ClaimedPoll) -> None:
        try:
            now = time.time()
            state = claimed.state
            if now >= state.deadline_at:
                step = lifecycle.expire(state, now, self.task_deadline)
                outcome = Outcome(
                    claimed.task_id,
                    claimed.raw_state,
                    step,
                    claimed.polls,
                    claimed.lease,
                    count_poll=False,
                )
                self.writer.add(outcome)
                return
            result = await self.upstream.fetch(claimed.task_id, now)
            after = time.time()
            self.recorder.inc("relay_polls_total", result.detail or result.kind)
            self.recorder.observe("relay_upstream_duration_seconds", after - now)
            await self._react(claimed, result, after)
            step = step_for(claimed, result, after, self.policy)
            self.writer.add(
                Outcome(claimed.task_id, claimed.raw_state, step, claimed.polls + 1, claimed.lease)
            )
        except Exception:
            # Never lose the loop to one task: its lease runs out and it is polled again.
            logger.exception("poll of %s failed", claimed.task_id)
        finally:
            self.in_flight -= 1

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

    async def _write(self, outcomes: list[Outcome]) -> None:
        replies = await self.queue.apply(outcomes, time.time())
        for outcome, reply in zip(outcomes, replies, strict=True):
            if reply != "ok":
                logger.info("outcome for %s not written: %s", outcome.task_id, reply)
            elif outcome.step.event:
                self.recorder.inc("relay_events_total", outcome.step.event)
                logger.info(
                    "task event", extra={"task_id": outcome.task_id, "event": outcome.step.event}
                )


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
