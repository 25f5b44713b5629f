"""The simulator's memory: which tasks it has seen, since when, and what it has been asked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.simulator.faults import FaultQueue
from relay.simulator.plans import Plan, answer, final_at
from relay.simulator.webhooks import WebhookSender

log = logging.getLogger("relay.simulator")

# With an injected clock, time can jump without the event loop knowing, so the
# dispatcher never sleeps longer than this before looking again.
_MAX_IDLE = 0.25


@dataclass
class SimTask:
    plan: Plan
    started_at: float  # clock reading at which the upstream first saw the task
    created: bool  # made through /sim/tasks rather than conjured by a fetch
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_sent: bool = False

    def elapsed(self, now: float, speed: float) -> float:
        return max(0.0, (now - self.started_at) * speed)

    def webhook_due_at(self, speed: float) -> float:
        return self.started_at + final_at(self.plan) / speed


class SimState:
    def __init__(self, *, speed: float, clock: Callable[[], float]) -> None:
        self.speed = speed
        self.clock = clock
        self.tasks: dict[str, SimTask] = {}
        self.faults = FaultQueue()
        self.fetches = 0
        self.by_task: Counter[str] = Counter()
        self.wake = asyncio.Event()

    def reset(self) -> None:
        self.tasks.clear()
        self.faults.clear()
        self.fetches = 0
        self.by_task.clear()

    def add(self, task: SimTask) -> None:
        self.tasks[task.plan.task_id] = task
        self.wake.set()

    def stats(self) -> dict[str, Any]:
        return {
            "fetches": self.fetches,
            "by_task": dict(self.by_task),
            "faults_pending": len(self.faults),
        }

    def take_due_webhooks(self) -> list[SimTask]:
        """Tasks whose webhook should go out now; each is handed out once."""
        now = self.clock()
        due = [
            task
            for task in self.tasks.values()
            if task.webhook_url and not task.webhook_sent and now >= task.webhook_due_at(self.speed)
        ]
        for task in due:
            task.webhook_sent = True
        return due

    def seconds_to_next_webhook(self) -> float:
        now = self.clock()
        waits = [
            task.webhook_due_at(self.speed) - now
            for task in self.tasks.values()
            if task.webhook_url and not task.webhook_sent
        ]
        return max(0.0, min([_MAX_IDLE, *waits]))


async def dispatch_webhooks(state: SimState, sender: WebhookSender) -> None:
    """Runs for the app's lifetime, sending each task's final answer when it becomes final."""
    while True:
        try:
            for task in state.take_due_webhooks():
                assert task.webhook_url is not None
                final = answer(task.plan, final_at(task.plan))
                sender.send(task.webhook_url, task.webhook_secret, final)
            wait = state.seconds_to_next_webhook()
        except Exception:
            # A simulator that stops sending webhooks is worse than one that logs and goes on.
            log.exception("webhook dispatcher failed; carrying on")
            wait = _MAX_IDLE
        state.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.wake.wait(), timeout=wait)
