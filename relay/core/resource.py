"""The public task resource and webhook bodies, rendered from stored values."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from relay.core.model import Event, Registration, TaskState

_encoder = msgspec.json.Encoder()


def rfc3339(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    # Rounded to the millisecond as stored scores are, so listings sort as they read.
    seconds, millis = divmod(round(timestamp * 1000), 1000)
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"
    )


def task_resource(state: TaskState, registration: Registration, polls: int) -> dict[str, Any]:
    """The task as one tenant sees it (the contract's "task resource")."""
    return {
        "task_id": registration.task_id,
        "status": state.status,
        "upstream_status": state.upstream_status,
        "progress": state.progress,
        "task_type": state.task_type,
        "model": state.model,
        "result": state.result.as_json(),
        "error": state.error,
        "webhook_url": registration.webhook_url,
        "events": list(registration.events),
        "metadata": registration.metadata,
        "registered_at": rfc3339(registration.registered_at),
        "updated_at": rfc3339(state.updated_at if state.updated_at else state.registered_at),
        "completed_at": rfc3339(state.completed_at),
        "polls": polls,
    }


def webhook_body(event: Event, registration: Registration) -> bytes:
    """The JSON body of one webhook: the same bytes on every attempt of the event."""
    return _encoder.encode(
        {
            "type": event.type,
            "timestamp": rfc3339(event.at),
            "data": task_resource(event.state, registration, event.polls),
        }
    )
