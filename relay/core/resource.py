"""The public shapes: the registration body, the task resource and webhook bodies."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec

from relay.core.model import Event, EventType, Registration, Status, TaskState

Uuid = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]
Timestamp = Annotated[
    str, msgspec.Meta(description="RFC 3339, UTC", examples=["2026-11-29T10:00:00.000Z"])
]


Url = Annotated[
    str,
    msgspec.Meta(
        max_length=2048, pattern="^[hH][tT][tT][pP][sS]?://", description="An absolute http(s) URL"
    ),
]


class RegistrationBody(msgspec.Struct):
    """The body of `POST /v1/tasks`: what the OpenAPI describes, and what the API's
    validation (relay.api.validation) answers once every field is checked, with the
    defaults filled in (events, metadata, upstream_webhook)."""

    task_id: Uuid
    webhook_url: Url | None = None
    events: Annotated[
        list[EventType] | None,
        msgspec.Meta(description="Omitted: the three final events; []: no webhooks"),
    ] = None
    metadata: Annotated[
        dict[str, Any] | None, msgspec.Meta(description="Echoed in every webhook; at most 16 KiB")
    ] = None
    upstream_webhook: Annotated[
        bool | None,
        msgspec.Meta(
            description="The upstream will call /v1/upstream/webhook for this task: polls "
            "become a sparse safety net"
        ),
    ] = None


class ResultView(msgspec.Struct):
    """A task's result as the resource shows it: all five keys, always."""

    images: list[str]
    grid_image: str | None
    videos: list[str]
    content: list[str]
    seed: str | None


class TaskResource(msgspec.Struct):
    """The contract's task resource: what the API answers, what every webhook's `data`
    holds, and what the OpenAPI description says of both."""

    task_id: Uuid
    status: Status
    upstream_status: str | None
    progress: Annotated[int, msgspec.Meta(ge=0, le=100)] | None
    task_type: str | None
    model: str | None
    result: ResultView
    error: str | None
    webhook_url: str | None
    events: list[EventType]
    metadata: dict[str, Any]
    registered_at: Timestamp
    updated_at: Timestamp
    completed_at: Timestamp | None
    polls: Annotated[int, msgspec.Meta(ge=0)]


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


def task_resource(state: TaskState, registration: Registration, polls: int) -> TaskResource:
    """The task as one tenant sees it (the contract's "task resource")."""
    return TaskResource(
        task_id=registration.task_id,
        status=state.status,
        upstream_status=state.upstream_status,
        progress=state.progress,
        task_type=state.task_type,
        model=state.model,
        result=ResultView(**state.result.as_json()),
        error=state.error,
        webhook_url=registration.webhook_url,
        events=list(registration.events),  # type: ignore[arg-type]
        metadata=registration.metadata,
        registered_at=_stamp(registration.registered_at),
        updated_at=_stamp(state.updated_at if state.updated_at else state.registered_at),
        completed_at=rfc3339(state.completed_at),
        polls=polls,
    )


def _stamp(timestamp: float) -> str:
    text = rfc3339(timestamp)
    assert text is not None
    return text


def webhook_body(event: Event, registration: Registration) -> bytes:
    """The JSON body of one webhook: the same bytes on every attempt of the event."""
    return _encoder.encode(
        {
            "type": event.type,
            "timestamp": rfc3339(event.at),
            "data": task_resource(event.state, registration, event.polls),
        }
    )
