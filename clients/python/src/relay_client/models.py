"""The API's resources as typed values, and the pure functions that read them from JSON.

Readers ignore fields they do not know, so a newer relay does not break an older client.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

TaskStatus = Literal["queued", "running", "succeeded", "failed", "timed_out"]
EventType = Literal["task.progress", "task.succeeded", "task.failed", "task.timed_out"]
DeliveryStatus = Literal["pending", "delivered", "failed", "gone"]

FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "timed_out"})

T = TypeVar("T")


class MalformedResource(ValueError):
    """A body that is not the resource the contract describes."""


@dataclasses.dataclass(frozen=True)
class TaskResult:
    images: tuple[str, ...] = ()
    grid_image: str | None = None
    videos: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    seed: str | None = None


@dataclasses.dataclass(frozen=True)
class Task:
    """The task resource: what the relay knows of one task, for the caller's tenant."""

    task_id: str
    status: str
    upstream_status: str | None
    progress: int | None
    task_type: str | None
    model: str | None
    result: TaskResult
    error: str | None
    webhook_url: str | None
    events: tuple[str, ...]
    metadata: Mapping[str, Any]
    registered_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    polls: int
    upstream_webhook: bool = False
    # The JSON as the relay sent it, for fields newer than this client.
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def final(self) -> bool:
        """True once the task has succeeded, failed or timed out: nothing changes after."""
        return self.status in FINAL_STATUSES


@dataclasses.dataclass(frozen=True)
class Registered:
    """A registration's answer: the task, and whether this call created the registration."""

    task: Task
    created: bool


@dataclasses.dataclass(frozen=True)
class Attempt:
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str | None = None


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One event's delivery to the task's webhook, with every attempt made for it."""

    id: str
    task_id: str
    webhook_id: str
    type: str
    status: str
    attempts: tuple[Attempt, ...]


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; `next_cursor` is None on the last."""

    items: tuple[T, ...]
    next_cursor: str | None


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedResource(f"{what} is not a JSON object: {value!r:.200}")
    return value


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise MalformedResource(f"not an RFC 3339 time: {value!r:.100}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise MalformedResource(f"not an RFC 3339 time: {value!r:.100}") from None


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in value or ())


def parse_result(value: Any) -> TaskResult:
    body = _object(value or {}, "result")
    seed = body.get("seed")
    return TaskResult(
        images=_strings(body.get("images")),
        grid_image=body.get("grid_image"),
        videos=_strings(body.get("videos")),
        content=_strings(body.get("content")),
        seed=None if seed is None else str(seed),
    )


def parse_task(value: Any) -> Task:
    body = _object(value, "the task")
    try:
        return Task(
            task_id=str(body["task_id"]),
            status=str(body["status"]),
            upstream_status=body.get("upstream_status"),
            progress=body.get("progress"),
            task_type=body.get("task_type"),
            model=body.get("model"),
            result=parse_result(body.get("result")),
            error=body.get("error"),
            webhook_url=body.get("webhook_url"),
            events=_strings(body.get("events")),
            metadata=_object(body.get("metadata") or {}, "metadata"),
            registered_at=_time(body["registered_at"]),
            updated_at=_time(body["updated_at"]),
            completed_at=_optional_time(body.get("completed_at")),
            polls=int(body.get("polls") or 0),
            upstream_webhook=bool(body.get("upstream_webhook", False)),
            raw=body,
        )
    except KeyError as exc:
        raise MalformedResource(f"the task has no {exc.args[0]!r}") from None


def parse_attempt(value: Any) -> Attempt:
    body = _object(value, "an attempt")
    return Attempt(
        at=_time(body.get("at")),
        status_code=body.get("status_code"),
        error=body.get("error"),
        duration_ms=int(body.get("duration_ms") or 0),
        response=body.get("response"),
    )


def parse_delivery(value: Any) -> Delivery:
    body = _object(value, "a delivery")
    try:
        return Delivery(
            id=str(body["id"]),
            task_id=str(body.get("task_id", "")),
            webhook_id=str(body["webhook_id"]),
            type=str(body["type"]),
            status=str(body["status"]),
            attempts=tuple(parse_attempt(a) for a in body.get("attempts") or ()),
        )
    except KeyError as exc:
        raise MalformedResource(f"the delivery has no {exc.args[0]!r}") from None


def parse_list(value: Any, key: str, item: Callable[[Any], T]) -> list[T]:
    """The items under `key` of a listing body."""
    items = _object(value, "the listing").get(key)
    if not isinstance(items, list):
        raise MalformedResource(f"the listing has no {key!r} list")
    return [item(entry) for entry in items]


def parse_page(value: Any, key: str, item: Callable[[Any], T]) -> Page[T]:
    cursor = _object(value, "the page").get("next_cursor")
    return Page(tuple(parse_list(value, key, item)), None if cursor in (None, "") else str(cursor))


def parse_field(value: Any, key: str) -> Any:
    """One field of a small answer body, such as `delivery_id` of a redelivery."""
    body = _object(value, "the answer")
    if key not in body:
        raise MalformedResource(f"the answer has no {key!r}")
    return body[key]
