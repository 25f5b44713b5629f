"""Each API call as data (method, path, body, how to read its answer, whether it may be
retried), shared by the sync and the async client, which only carry it out."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from relay_client.models import (
    Delivery,
    Page,
    Registered,
    Task,
    parse_delivery,
    parse_field,
    parse_list,
    parse_page,
    parse_task,
)

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    # (HTTP status, the decoded JSON body or None) -> the typed result
    read: Callable[[int, Any], T]
    params: Mapping[str, str | int] | None = None
    body: Any = None
    # Safe to send twice: GET, DELETE and registration (idempotent by the contract).
    idempotent: bool = False
    # Seconds the relay holds the call on purpose (long-poll), added to the read timeout.
    held: float = 0.0
    # A 404 answering a retry means an earlier attempt did the work and lost its answer.
    missing_after_retry_is_done: bool = False


def _id(value: str | uuid.UUID) -> str:
    return quote(str(value), safe="")


def _task(status: int, body: Any) -> Task:
    return parse_task(body)


def _nothing(status: int, body: Any) -> None:
    return None


def _delivery_id(status: int, body: Any) -> str:
    return str(parse_field(body, "delivery_id"))


def register(
    task_id: str | uuid.UUID,
    webhook_url: str | None = None,
    events: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    upstream_webhook: bool = False,
) -> Call[Registered]:
    body: dict[str, Any] = {"task_id": str(task_id), "upstream_webhook": upstream_webhook}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    if events is not None:
        body["events"] = list(events)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return Call(
        "POST",
        "/v1/tasks",
        lambda status, answer: Registered(parse_task(answer), created=status == 201),
        body=body,
        idempotent=True,
    )


def get_task(task_id: str | uuid.UUID) -> Call[Task]:
    return Call("GET", f"/v1/tasks/{_id(task_id)}", _task, idempotent=True)


def delete_task(task_id: str | uuid.UUID) -> Call[None]:
    return Call(
        "DELETE",
        f"/v1/tasks/{_id(task_id)}",
        _nothing,
        idempotent=True,
        missing_after_retry_is_done=True,
    )


def wait_task(task_id: str | uuid.UUID, seconds: int) -> Call[Task]:
    return Call(
        "GET",
        f"/v1/tasks/{_id(task_id)}/wait",
        _task,
        params={"timeout": seconds},
        idempotent=True,
        held=seconds,
    )


def _listing(limit: int, cursor: str | None, **extra: str | None) -> dict[str, str | int]:
    params: dict[str, str | int] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    params.update({k: v for k, v in extra.items() if v is not None})
    return params


def list_tasks(status: str | None, limit: int, cursor: str | None) -> Call[Page[Task]]:
    return Call(
        "GET",
        "/v1/tasks",
        lambda _, body: parse_page(body, "tasks", parse_task),
        params=_listing(limit, cursor, status=status),
        idempotent=True,
    )


def deliveries(task_id: str | uuid.UUID) -> Call[list[Delivery]]:
    return Call(
        "GET",
        f"/v1/tasks/{_id(task_id)}/deliveries",
        lambda _, body: parse_list(body, "deliveries", parse_delivery),
        idempotent=True,
    )


def failed_deliveries(limit: int, cursor: str | None) -> Call[Page[Delivery]]:
    return Call(
        "GET",
        "/v1/deliveries",
        lambda _, body: parse_page(body, "deliveries", parse_delivery),
        params=_listing(limit, cursor, status="failed"),
        idempotent=True,
    )


# Redeliveries start a new attempt series each time: never sent twice on the client's own.


def redeliver(task_id: str | uuid.UUID) -> Call[str]:
    return Call("POST", f"/v1/tasks/{_id(task_id)}/redeliver", _delivery_id)


def redeliver_delivery(delivery_id: str) -> Call[str]:
    return Call("POST", f"/v1/deliveries/{_id(delivery_id)}/redeliver", _delivery_id)


def redeliver_failed() -> Call[list[str]]:
    return Call(
        "POST",
        "/v1/deliveries/redeliver",
        lambda _, body: [str(i) for i in parse_field(body, "delivery_ids")],
    )
