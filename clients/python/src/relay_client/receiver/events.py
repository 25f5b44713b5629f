"""A delivery's body as a typed event: `{"type", "timestamp", "data": <task resource>}`."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

from relay_client.models import MalformedResource, Task, parse_task
from relay_client.receiver.errors import MalformedWebhook


@dataclasses.dataclass(frozen=True)
class Event:
    """One event of a task. `id` is its `webhook-id`: the same on every retry and on a
    redelivery, so it is what to deduplicate on. A type newer than this kit is an `Event`."""

    id: str
    type: str
    timestamp: datetime
    task: Task


@dataclasses.dataclass(frozen=True)
class TaskProgress(Event):
    """The status or the progress changed before the end."""


@dataclasses.dataclass(frozen=True)
class TaskSucceeded(Event):
    """Final: `task.result` holds the outputs (their URLs expire upstream: fetch them soon)."""


@dataclasses.dataclass(frozen=True)
class TaskFailed(Event):
    """Final: `task.error` says why."""


@dataclasses.dataclass(frozen=True)
class TaskTimedOut(Event):
    """Final: the relay's deadline passed; `task.error` says which."""


EVENT_CLASSES: dict[str, type[Event]] = {
    "task.progress": TaskProgress,
    "task.succeeded": TaskSucceeded,
    "task.failed": TaskFailed,
    "task.timed_out": TaskTimedOut,
}


def parse_event(webhook_id: str, body: bytes) -> Event:
    """The event in a (verified) delivery body. Pure."""
    try:
        payload = json.loads(body)
        kind = payload["type"]
        return EVENT_CLASSES.get(kind, Event)(
            id=webhook_id,
            type=str(kind),
            timestamp=datetime.fromisoformat(payload["timestamp"]),
            task=parse_task(payload["data"]),
        )
    except (ValueError, KeyError, TypeError, MalformedResource) as exc:
        raise MalformedWebhook(f"the body is not an event: {exc}") from None
