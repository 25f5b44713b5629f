"""How stored values are encoded: JSON via msgspec, one encoder/decoder per type."""

from __future__ import annotations

import msgspec

from relay.core.model import Event, Registration, TaskState

encode = msgspec.json.Encoder().encode
_state = msgspec.json.Decoder(TaskState)
_registration = msgspec.json.Decoder(Registration)
_event = msgspec.json.Decoder(Event)


def dump(value: object) -> str:
    return encode(value).decode()


def load_state(raw: str) -> TaskState:
    return _state.decode(raw)


def load_registration(raw: str) -> Registration:
    return _registration.decode(raw)


def load_event(raw: str) -> Event:
    return _event.decode(raw)
