"""How stored values are encoded: JSON via msgspec, one encoder/decoder per type.

Stored values leave out what their key already says and what equals its
default: a tracked task's bytes are most of the relay's memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from relay.core.model import (
    DEFAULT_EVENTS,
    EMPTY_RESULT,
    Event,
    Registration,
    Result,
    Status,
    TaskState,
)

encode = msgspec.json.Encoder().encode


class StoredRegistration(msgspec.Struct, frozen=True, array_like=True):
    """A registration as stored under its task and tenant (which it need not repeat):
    a JSON array of these fields, trailing defaults left out.

    The Lua scripts read the first three (`rid`, the webhook URL, the events, null
    for the default three). The client's `metadata` is stored in a field of its
    own (`m:<tenant>` in the task's record) that no script ever decodes, so
    nothing a client sends can make a script fail. `registered` (ms) is there
    only when it is not the task's own registration time (a tenant that joined).
    """

    rid: str
    webhook_url: str | None = None
    events: tuple[str, ...] | None = None
    upstream_webhook: bool = False
    registered: int | None = None


class StoredState(msgspec.Struct, frozen=True, array_like=True):
    """A TaskState as stored: a JSON array of its fields in this order, its times in
    ms, each after the first as its offset from the registration's. Fields most often
    at their defaults come last, and `dump_state` leaves out the trailing defaults: a
    tracked task's state is most of its record."""

    registered: int
    deadline: int
    status: Status = "queued"
    upstream_status: str | None = None
    progress: int | None = None
    task_type: str | None = None
    model: str | None = None
    updated: int | None = None
    status_since: int | None = None
    waiting: int | None = None
    result: Result = EMPTY_RESULT
    error: str | None = None
    completed: int | None = None
    failed_since: int | None = None
    errors: int = 0
    not_found_since: int | None = None


_STATE_DEFAULTS = msgspec.structs.astuple(StoredState(0, 0))


def _stored_state(state: TaskState) -> StoredState:
    base = round(state.registered_at * 1000)

    def at(t: float | None) -> int | None:
        return None if t is None else round(t * 1000) - base

    return StoredState(
        registered=base,
        deadline=round(state.deadline_at * 1000) - base,
        status=state.status,
        upstream_status=state.upstream_status,
        progress=state.progress,
        task_type=state.task_type,
        model=state.model,
        updated=at(state.updated_at),
        status_since=at(state.status_since),
        waiting=at(state.waiting_at),
        result=state.result,
        error=state.error,
        completed=at(state.completed_at),
        failed_since=at(state.failed_since),
        errors=state.errors,
        not_found_since=at(state.not_found_since),
    )


def _task_state(stored: StoredState) -> TaskState:
    base = stored.registered

    def at(offset: int | None) -> float | None:
        return None if offset is None else (base + offset) / 1000

    return TaskState(
        registered_at=base / 1000,
        deadline_at=(base + stored.deadline) / 1000,
        status=stored.status,
        upstream_status=stored.upstream_status,
        progress=stored.progress,
        task_type=stored.task_type,
        model=stored.model,
        result=stored.result,
        error=stored.error,
        updated_at=at(stored.updated),
        completed_at=at(stored.completed),
        status_since=at(stored.status_since),
        failed_since=at(stored.failed_since),
        errors=stored.errors,
        not_found_since=at(stored.not_found_since),
        waiting_at=at(stored.waiting),
    )


def _state_array(state: TaskState) -> list[Any]:
    values = list(msgspec.structs.astuple(_stored_state(state)))
    while len(values) > 2 and values[-1] == _STATE_DEFAULTS[len(values) - 1]:
        values.pop()
    return values


class StoredEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """An event as stored in its task's record: a final event leaves out its state,
    which is the task's own from then on."""

    type: str
    at: float
    polls: int
    state: StoredState | None = None


class StoredAttempt(msgspec.Struct, frozen=True, array_like=True):
    """One attempt as the deliveries listing shows it, stored as a JSON array."""

    at: str
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str | None


_state = msgspec.json.Decoder(StoredState)
_registration = msgspec.json.Decoder(StoredRegistration)
_event = msgspec.json.Decoder(StoredEvent)
_metadata = msgspec.json.Decoder(dict[str, Any])


def dump(value: object) -> str:
    return encode(value).decode()


def dump_registrations(registration: Registration) -> tuple[str, str]:
    """The registration as stored when its time is the task's, and as stored when
    it is not (REGISTER, which alone knows, picks one)."""
    events = None if registration.events == DEFAULT_EVENTS else registration.events
    values = [registration.rid, registration.webhook_url, events, registration.upstream_webhook]
    joined = dump([*values, round(registration.registered_at * 1000)])
    while len(values) > 1 and values[-1] == _REGISTRATION_DEFAULTS[len(values) - 1]:
        values.pop()
    return dump(values), joined


_REGISTRATION_DEFAULTS = msgspec.structs.astuple(StoredRegistration(""))


def dump_metadata(registration: Registration) -> str:
    """The registration's metadata as stored beside it: '' for none."""
    return dump(registration.metadata) if registration.metadata else ""


def load_registration(
    raw: str, tenant: str, task_id: str, raw_metadata: str | None, raw_state: str
) -> Registration:
    """A stored registration; `raw_state`, its task's, says when the task was registered."""
    stored = _registration.decode(raw)
    registered = stored.registered if stored.registered is not None else registered_ms(raw_state)
    return Registration(
        tenant=tenant,
        task_id=task_id,
        registered_at=registered / 1000,
        rid=stored.rid,
        webhook_url=stored.webhook_url,
        events=DEFAULT_EVENTS if stored.events is None else stored.events,
        metadata=_metadata.decode(raw_metadata) if raw_metadata else {},
        upstream_webhook=stored.upstream_webhook,
    )


def registered_ms(raw_state: str) -> int:
    """A stored state's first field, the task's registration time (ms), read without
    decoding the rest."""
    return int(raw_state[1 : raw_state.index(",")])


def dump_state(state: TaskState) -> str:
    return dump(_state_array(state))


def load_state(raw: str) -> TaskState:
    return _task_state(_state.decode(raw))


_attempt = msgspec.json.Decoder(StoredAttempt)


def dump_attempt(attempt: dict[str, Any]) -> str:
    return dump(StoredAttempt(**attempt))


def load_attempt(raw: str) -> dict[str, Any]:
    return msgspec.structs.asdict(_attempt.decode(raw))


def dump_event(event: Event, *, final: bool) -> str:
    stored = StoredEvent(type=event.type, at=event.at, polls=event.polls)
    if final:
        return dump(stored)
    # The state as `dump_state` writes it, without its trailing defaults.
    return dump({**msgspec.structs.asdict(stored), "state": _state_array(event.state)})


def load_event(raw: str, task_state: Callable[[], TaskState]) -> Event:
    """An event; `task_state` gives the state of a final event, which is the task's."""
    stored = _event.decode(raw)
    state = _task_state(stored.state) if stored.state is not None else task_state()
    return Event(type=stored.type, at=stored.at, state=state, polls=stored.polls)
