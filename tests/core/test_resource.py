"""The task resource and the webhook body (relay.core.resource), to CONTRACT.md's letter."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec
import pytest

from relay.core.model import DEFAULT_EVENTS, Event, Registration, Result, TaskState
from relay.core.resource import rfc3339, task_resource, webhook_body
from support.payloads import FINISHED_GRID, TASK
from tests.contract import RESOURCE_KEYS, RESULT_KEYS, RFC3339_Z

T0 = 1_764_410_400.0  # 2025-11-29T10:00:00Z
GRID = tuple(FINISHED_GRID["image_urls"])

REG = Registration(
    tenant="alpha",
    task_id=TASK,
    registered_at=T0 + 0.25,
    rid="r1",
    webhook_url="https://hooks.example.com/journey",
    events=("task.progress", "task.succeeded"),
    metadata={"order": 42, "z": [1, 2], "a": {"nested": "\u00e9"}},
)
BARE_REG = Registration(tenant="beta", task_id=TASK, registered_at=T0, rid="r2")

FRESH = TaskState(registered_at=T0, deadline_at=T0 + 3600)
RUNNING = TaskState(
    registered_at=T0,
    deadline_at=T0 + 3600,
    status="running",
    upstream_status="processing",
    progress=45,
    task_type="imagine",
    model="midjourney",
    updated_at=T0 + 30.5,
    status_since=T0 + 10,
)
SUCCEEDED = TaskState(
    registered_at=T0,
    deadline_at=T0 + 3600,
    status="succeeded",
    upstream_status="finished",
    progress=100,
    task_type="imagine",
    model="midjourney",
    result=Result(images=GRID, grid_image=FINISHED_GRID["original_image_url"]),
    updated_at=T0 + 61.123456,
    completed_at=T0 + 61.123456,
)
SEED = TaskState(
    registered_at=T0,
    deadline_at=T0 + 3600,
    status="succeeded",
    upstream_status="finished",
    progress=100,
    task_type="seed",
    result=Result(seed="0012345678901234567890"),
    updated_at=T0 + 5,
    completed_at=T0 + 5,
)
VIDEO = TaskState(
    registered_at=T0,
    deadline_at=T0 + 3600,
    status="succeeded",
    upstream_status="finished",
    progress=100,
    task_type="imagine-video",
    result=Result(videos=("https://cdn.example.com/v/1.mp4",)),
    updated_at=T0 + 200,
    completed_at=T0 + 200,
)
FAILED = TaskState(
    registered_at=T0,
    deadline_at=T0 + 3600,
    status="failed",
    upstream_status="failed",
    error="Content policy violation",
    updated_at=T0 + 90,
    completed_at=T0 + 90,
)
TIMED_OUT = TaskState(
    registered_at=T0,
    deadline_at=T0 + 3600,
    status="timed_out",
    upstream_status="pending",
    error="RELAY_TASK_DEADLINE passed",
    updated_at=T0 + 3600,
    completed_at=T0 + 3600,
)

STATES = [
    pytest.param(FRESH, id="fresh"),
    pytest.param(RUNNING, id="running"),
    pytest.param(SUCCEEDED, id="succeeded-grid"),
    pytest.param(SEED, id="succeeded-seed"),
    pytest.param(VIDEO, id="succeeded-video"),
    pytest.param(FAILED, id="failed"),
    pytest.param(TIMED_OUT, id="timed-out"),
]
REGS = [pytest.param(REG, id="full-reg"), pytest.param(BARE_REG, id="bare-reg")]


def rendered(state: TaskState, reg: Registration, polls: int) -> dict[str, Any]:
    """The resource as a client reads it: the JSON the API and the webhooks send."""
    decoded: dict[str, Any] = json.loads(msgspec.json.encode(task_resource(state, reg, polls)))
    return decoded


def parse_time(text: str) -> float:
    assert RFC3339_Z.match(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("reg", REGS)
@pytest.mark.parametrize("state", STATES)
def test_resource_has_exactly_the_contract_keys(state: TaskState, reg: Registration) -> None:
    resource = rendered(state, reg, polls=3)
    assert set(resource) == RESOURCE_KEYS
    assert set(resource["result"]) == RESULT_KEYS
    assert resource["task_id"] == TASK
    assert resource["status"] in {"queued", "running", "succeeded", "failed", "timed_out"}
    assert resource["polls"] == 3
    assert resource["webhook_url"] == reg.webhook_url
    assert resource["events"] == list(reg.events)
    assert resource["metadata"] == reg.metadata
    assert isinstance(resource["result"]["images"], list)
    assert isinstance(resource["result"]["videos"], list)
    assert isinstance(resource["result"]["content"], list)
    # All of it is plain JSON.
    assert json.loads(json.dumps(resource)) == resource


@pytest.mark.parametrize(
    ("state", "field", "expected"),
    [
        pytest.param(FRESH, "status", "queued", id="fresh-queued"),
        pytest.param(FRESH, "upstream_status", None, id="fresh-no-upstream-word"),
        pytest.param(FRESH, "progress", None, id="fresh-progress-null"),
        pytest.param(FRESH, "task_type", None, id="fresh-type-null"),
        pytest.param(FRESH, "model", None, id="fresh-model-null"),
        pytest.param(FRESH, "error", None, id="fresh-error-null"),
        pytest.param(FRESH, "completed_at", None, id="fresh-not-completed"),
        pytest.param(
            FRESH,
            "result",
            {"images": [], "grid_image": None, "videos": [], "content": [], "seed": None},
            id="fresh-empty-result",
        ),
        pytest.param(RUNNING, "progress", 45, id="running-progress"),
        pytest.param(RUNNING, "upstream_status", "processing", id="running-raw-word"),
        pytest.param(RUNNING, "completed_at", None, id="running-not-completed"),
        pytest.param(
            SUCCEEDED,
            "result",
            {
                "images": list(GRID),
                "grid_image": "https://cdn.midjourney.com/abc123/grid_0.png",
                "videos": [],
                "content": [],
                "seed": None,
            },
            id="grid-result",
        ),
        pytest.param(SUCCEEDED, "progress", 100, id="succeeded-100"),
        pytest.param(
            SEED,
            "result",
            {**Result().as_json(), "seed": "0012345678901234567890"},
            id="seed-stays-a-string",
        ),
        pytest.param(
            VIDEO,
            "result",
            {**Result().as_json(), "videos": ["https://cdn.example.com/v/1.mp4"]},
            id="video-result",
        ),
        pytest.param(FAILED, "error", "Content policy violation", id="failed-error"),
        pytest.param(TIMED_OUT, "status", "timed_out", id="timed-out"),
    ],
)
def test_resource_fields(state: TaskState, field: str, expected: Any) -> None:
    assert rendered(state, REG, polls=0)[field] == expected


@pytest.mark.parametrize("state", STATES)
def test_timestamps_are_rfc3339_utc(state: TaskState) -> None:
    resource = rendered(state, REG, polls=1)
    assert parse_time(resource["registered_at"]) == pytest.approx(REG.registered_at, abs=1e-3)
    want_updated = state.updated_at if state.updated_at is not None else state.registered_at
    assert parse_time(resource["updated_at"]) == pytest.approx(want_updated, abs=1e-3)
    if state.completed_at is None:
        assert resource["completed_at"] is None
    else:
        assert parse_time(resource["completed_at"]) == pytest.approx(state.completed_at, abs=1e-3)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        pytest.param(T0, "2025-11-29T10:00:00", id="whole-second"),
        pytest.param(T0 + 0.5, "2025-11-29T10:00:00.5", id="half-second"),
        pytest.param(0.0, "1970-01-01T00:00:00", id="epoch"),
        pytest.param(4_102_444_800.0, "2100-01-01T00:00:00", id="year-2100"),
    ],
)
def test_rfc3339(timestamp: float, expected: str) -> None:
    text = rfc3339(timestamp)
    assert text is not None
    assert RFC3339_Z.match(text), text
    assert text.startswith(expected)
    assert parse_time(text) == pytest.approx(timestamp, abs=1e-3)


def test_rfc3339_none() -> None:
    assert rfc3339(None) is None


# --- webhook_body -----------------------------------------------------------------------------

EVENTS = [
    pytest.param(Event(type="task.progress", at=T0 + 30.5, state=RUNNING, polls=2), id="progress"),
    pytest.param(
        Event(type="task.succeeded", at=T0 + 61.123456, state=SUCCEEDED, polls=5), id="succeeded"
    ),
    pytest.param(Event(type="task.failed", at=T0 + 90, state=FAILED, polls=7), id="failed"),
    pytest.param(
        Event(type="task.timed_out", at=T0 + 3600, state=TIMED_OUT, polls=99), id="timed-out"
    ),
]


@pytest.mark.parametrize("reg", REGS)
@pytest.mark.parametrize("event", EVENTS)
def test_webhook_body(event: Event, reg: Registration) -> None:
    body = webhook_body(event, reg)
    decoded = json.loads(body)
    assert set(decoded) == {"type", "timestamp", "data"}
    assert decoded["type"] == event.type
    assert parse_time(decoded["timestamp"]) == pytest.approx(event.at, abs=1e-3)
    assert decoded["data"] == rendered(event.state, reg, event.polls)
    assert set(decoded["data"]) == RESOURCE_KEYS
    assert decoded["data"]["metadata"] == reg.metadata


@pytest.mark.parametrize("reg", REGS)
@pytest.mark.parametrize("event", EVENTS)
def test_webhook_body_is_byte_identical(event: Event, reg: Registration) -> None:
    first = webhook_body(event, reg)
    assert webhook_body(event, reg) == first
    # Also after the event and registration went through storage as JSON (every retry does).
    stored_event = msgspec.json.decode(msgspec.json.encode(event), type=Event)
    stored_reg = msgspec.json.decode(msgspec.json.encode(reg), type=Registration)
    assert webhook_body(stored_event, stored_reg) == first


def test_default_events_are_the_three_final_ones() -> None:
    assert (
        set(rendered(FRESH, BARE_REG, 0)["events"])
        == set(DEFAULT_EVENTS)
        == {
            "task.succeeded",
            "task.failed",
            "task.timed_out",
        }
    )
