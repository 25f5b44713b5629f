"""The shapes of the API's bodies, as types: the source of the OpenAPI description.

Requests are validated by `relay.api.validation` (so that every mistake is
named by its field); these types describe the same rules for the spec, and
the tests check real answers against the spec generated from them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from relay.core.model import EventType
from relay.core.resource import RegistrationBody, TaskResource, Timestamp, Uuid

EventName = EventType
# Defined with the resource they describe (relay.core.resource): one shape each.
__all__ = ["RegistrationBody", "TaskResource"]


class TaskList(msgspec.Struct):
    tasks: list[TaskResource]
    next_cursor: Annotated[str | None, msgspec.Meta(description="Pass as ?cursor= for more")]


class Attempt(msgspec.Struct):
    at: Timestamp
    status_code: int | None
    error: Annotated[str | None, msgspec.Meta(description="timeout, connect, blocked, protocol")]
    duration_ms: Annotated[int, msgspec.Meta(ge=0)]
    response: Annotated[str | None, msgspec.Meta(description="The first bytes of the answer")]


class Delivery(msgspec.Struct):
    id: str
    task_id: Uuid
    webhook_id: str
    type: EventName
    status: Literal["pending", "delivered", "failed", "gone"]
    attempts: list[Attempt]


class DeliveryList(msgspec.Struct):
    deliveries: list[Delivery]


class FailedDeliveryList(msgspec.Struct):
    deliveries: list[Delivery]
    next_cursor: str | None


class Redelivered(msgspec.Struct):
    delivery_id: str


class BulkRedelivered(msgspec.Struct):
    delivery_ids: list[str]


class Accepted(msgspec.Struct):
    status: Annotated[
        Literal["signalled", "ignored"],
        msgspec.Meta(description="signalled: the task is fetched now; ignored: nobody tracks it"),
    ]


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: Literal["ready"]
    upstream: Annotated[
        Literal["ok", "unauthorized"],
        msgspec.Meta(description="unauthorized: the upstream refuses RELAY_UPSTREAM_API_KEY"),
    ]


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    field: str | None = None


class Error(msgspec.Struct):
    error: ErrorDetail


class UpstreamAnswer(msgspec.Struct, forbid_unknown_fields=False):
    """The upstream's fetch-shaped body; other fields of the upstream's answer may be present."""

    task_id: Uuid
    status: str
