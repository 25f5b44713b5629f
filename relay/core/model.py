"""The values the relay keeps per task, shared by every module that touches them."""

from __future__ import annotations

import secrets
from typing import Any, Literal, get_args

import msgspec

Status = Literal["queued", "running", "succeeded", "failed", "timed_out"]
STATUSES: tuple[str, ...] = get_args(Status)
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "timed_out"})

EventType = Literal["task.progress", "task.succeeded", "task.failed", "task.timed_out"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
DEFAULT_EVENTS: tuple[str, ...] = ("task.succeeded", "task.failed", "task.timed_out")
FINAL_EVENT_FOR_STATUS = {
    "succeeded": "task.succeeded",
    "failed": "task.failed",
    "timed_out": "task.timed_out",
}


class Result(msgspec.Struct, frozen=True, omit_defaults=True):
    images: tuple[str, ...] = ()
    grid_image: str | None = None
    videos: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    seed: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "images": list(self.images),
            "grid_image": self.grid_image,
            "videos": list(self.videos),
            "content": list(self.content),
            "seed": self.seed,
        }


# The one empty result: stored states omit a result that *is* this value, so
# normalization hands it out rather than an equal copy.
EMPTY_RESULT = Result()


class Observation(msgspec.Struct, frozen=True):
    """What one well-formed upstream answer says about a task, normalized."""

    upstream_status: str
    status: Status
    progress: int | None = None
    task_type: str | None = None
    model: str | None = None
    result: Result = EMPTY_RESULT
    error: str | None = None


class TaskState(msgspec.Struct, frozen=True):
    """The relay's knowledge of one upstream task, shared by all its subscribers.

    Timestamps are unix seconds, to the millisecond. The fields after
    `completed_at` are the schedule's memory: what past polls taught about
    this task's pace. Stored as `relay.store.codec.StoredState`.
    """

    registered_at: float
    deadline_at: float
    status: Status = "queued"
    upstream_status: str | None = None
    progress: int | None = None
    task_type: str | None = None
    model: str | None = None
    result: Result = EMPTY_RESULT
    error: str | None = None
    updated_at: float | None = None
    completed_at: float | None = None
    # schedule memory
    status_since: float | None = None  # when the current upstream status was first seen
    failed_since: float | None = None  # first `failed` answer still under grace
    errors: int = 0  # consecutive polls that taught nothing (faults, bad bodies)
    not_found_since: float | None = None
    waiting_at: float | None = None  # the last answer that said it was not processing

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def new_rid() -> str:
    """A registration's own id: unique among one task's registrations (48 random bits),
    and short, since every delivery repeats it."""
    return secrets.token_urlsafe(6)


class Registration(msgspec.Struct, frozen=True):
    """One tenant's subscription to one task."""

    tenant: str
    task_id: str
    registered_at: float
    rid: str  # a fresh id per registration, so a deleted one's deliveries die with it
    webhook_url: str | None = None
    events: tuple[str, ...] = DEFAULT_EVENTS
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    # The client asked the upstream to call the relay back for this task: polls are
    # then only a sparse safety net (while every registration of the task says so).
    upstream_webhook: bool = False


class Event(msgspec.Struct, frozen=True):
    """One event of one task, as it was when it was made."""

    type: str
    at: float
    state: TaskState
    polls: int


# How one delivery attempt ends its turn: retried later, or the delivery is over.
Ending = Literal["retry", "delivered", "failed", "gone", "drop"]
