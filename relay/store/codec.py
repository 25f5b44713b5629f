"""How stored values are encoded: JSON via msgspec, one encoder/decoder per type.

Stored values leave out what their key already says and what equals its
default: a tracked task's bytes are most of the relay's memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from relay.core.model import DEFAULT_EVENTS, Event, Registration, TaskState

encode = msgspec.json.Encoder().encode


class StoredRegistration(
    msgspec.Struct,
    frozen=True,
    omit_defaults=True,
    rename={
        "registered_at": "at",
        "webhook_url": "url",
        "events": "ev",
        "metadata": "md",
        "upstream_webhook": "uw",
    },
):
    """A registration as stored under its task and tenant (which it need not repeat).

    The Lua scripts read `rid`, `url` (the webhook URL) and `ev` (the events;
    absent: the default three). The client's `metadata` is stored in a field of
    its own (`m:<tenant>` in the task's record) that no script ever decodes, so nothing a
    client sends can make a script fail; `md` here is only read, from
    registrations stored before that.
    """

    registered_at: float
    rid: str
    webhook_url: str | None = None
    events: tuple[str, ...] = DEFAULT_EVENTS
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    upstream_webhook: bool = False


class StoredEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """An event as stored in its task's record: a final event leaves out its state,
    which is the task's own from then on."""

    type: str
    at: float
    polls: int
    state: TaskState | None = None


class StoredAttempt(msgspec.Struct, frozen=True, array_like=True):
    """One attempt as the deliveries listing shows it, stored as a JSON array."""

    at: str
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str | None


_state = msgspec.json.Decoder(TaskState)
_registration = msgspec.json.Decoder(StoredRegistration)
_event = msgspec.json.Decoder(StoredEvent)
_metadata = msgspec.json.Decoder(dict[str, Any])


def dump(value: object) -> str:
    return encode(value).decode()


def dump_registration(registration: Registration) -> str:
    events = DEFAULT_EVENTS if registration.events == DEFAULT_EVENTS else registration.events
    return dump(
        StoredRegistration(
            registered_at=registration.registered_at,
            rid=registration.rid,
            webhook_url=registration.webhook_url,
            events=events,
            upstream_webhook=registration.upstream_webhook,
        )
    )


def dump_metadata(registration: Registration) -> str:
    """The registration's metadata as stored beside it: '' for none."""
    return dump(registration.metadata) if registration.metadata else ""


def load_registration(
    raw: str, tenant: str, task_id: str, raw_metadata: str | None = None
) -> Registration:
    stored = _registration.decode(raw)
    return Registration(
        tenant=tenant,
        task_id=task_id,
        registered_at=stored.registered_at,
        rid=stored.rid,
        webhook_url=stored.webhook_url,
        events=stored.events,
        metadata=_metadata.decode(raw_metadata) if raw_metadata else stored.metadata,
        upstream_webhook=stored.upstream_webhook,
    )


def load_state(raw: str) -> TaskState:
    return _state.decode(raw)


_attempt = msgspec.json.Decoder(StoredAttempt)


def dump_attempt(attempt: dict[str, Any]) -> str:
    return dump(StoredAttempt(**attempt))


def load_attempt(raw: str) -> dict[str, Any]:
    return msgspec.structs.asdict(_attempt.decode(raw))


def dump_event(event: Event, *, final: bool) -> str:
    state = None if final else event.state
    return dump(StoredEvent(type=event.type, at=event.at, polls=event.polls, state=state))


def load_event(raw: str, task_state: Callable[[], TaskState]) -> Event:
    """An event; `task_state` gives the state of a final event, which is the task's."""
    stored = _event.decode(raw)
    state = stored.state if stored.state is not None else task_state()
    return Event(type=stored.type, at=stored.at, state=state, polls=stored.polls)
