"""The pure parts of a task's record: delivery ids, the fields, the stored shapes."""

from __future__ import annotations

import pytest

from relay.core.model import Event, Result, TaskState
from relay.store import keys
from relay.store.codec import (
    dump_attempt,
    dump_event,
    dump_state,
    load_attempt,
    load_event,
    load_state,
)
from relay.store.deliveries import is_delivery_id
from relay.store.record import ATTEMPT, TaskRecord, join_fields

TASK = "550e8400-e29b-41d4-a716-446655440000"
STATE = TaskState(registered_at=1_800_000_000.0, deadline_at=1_800_010_800.0)


@pytest.mark.parametrize(
    ("task_id", "key"),
    [
        (TASK, "0badcafe"),
        ("00000000-0000-0000-0000-000000000000", "00000000"),
        ("ffffffff-ffff-ffff-ffff-ffffffffffff", "ffffffff"),
    ],
)
def test_a_delivery_id_names_its_task_and_its_key(task_id: str, key: str) -> None:
    delivery_id = keys.delivery_id(task_id, key)
    assert delivery_id.startswith("dlv_") and len(delivery_id) == 34
    assert is_delivery_id(delivery_id)
    assert keys.delivery_task(delivery_id) == (task_id, key)
    assert keys.delivery_shard(delivery_id) == keys.shard_of(task_id)


@pytest.mark.parametrize(
    "task_id",
    [TASK, "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"],
)
def test_a_compact_id_is_22_url_safe_characters_and_gives_the_id_back(task_id: str) -> None:
    compact = keys.compact_id(task_id)
    assert len(compact) == 22 and compact.isascii() and " " not in compact
    assert keys.full_id(compact) == task_id
    # Both spellings of a UUID are one task: the API hands on what it was given.
    assert keys.compact_id(task_id.upper()) == compact


@pytest.mark.parametrize("compact", ["", "abc", "A" * 23, "!" * 22])
def test_a_string_that_is_no_compact_id_gives_no_task_id(compact: str) -> None:
    with pytest.raises(ValueError):
        keys.full_id(compact)


@pytest.mark.parametrize(
    "task_id",
    [TASK, "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"],
)
def test_a_place_names_the_keys_its_task_id_does(task_id: str) -> None:
    place = keys.place_of(task_id)
    assert place == keys.placed(keys.compact_id(task_id), keys.shard_of(task_id))
    assert (place.task, place.due_bucket, place.fair_bucket) == (
        keys.task(task_id),
        keys.due_bucket(task_id),
        keys.fair_bucket(task_id),
    )


@pytest.mark.parametrize(
    "value",
    ["dlv_" + "A" * 21 + "B0badcafe", "dlv_" + "%" * 22 + "0badcafe", "dlv_short", "x" * 34],
)
def test_a_string_not_shaped_like_a_delivery_id_is_none(value: str) -> None:
    assert not is_delivery_id(value)


@pytest.mark.parametrize(
    ("fields", "tenants"),
    [
        ({"s": "{}", "p": "0"}, []),
        ({"s": "{}", "r:beta": "{}", "r:alpha": "{}", "m:alpha": "{}"}, ["alpha", "beta"]),
        ({"s": "", "r:a.b-c_d": '{"x":"y z"}'}, ["a.b-c_d"]),
    ],
)
def test_fields_read_back_as_written(fields: dict[str, str], tenants: list[str]) -> None:
    record = TaskRecord(TASK, join_fields(fields))
    assert record.fields == fields
    assert record.tenants() == tenants


def test_a_delivery_reads_with_its_placeholders() -> None:
    fields = {
        "s": "{}",
        "l:alpha": "0badcafe 0000beef",
        "d:0badcafe": "alpha 9e0e16edd9bc77fb evt_1 task.progress delivered 1 1 1000 ~ 2000 ~ ~",
        "d:0000beef": "alpha 9e0e16edd9bc77fb evt_2 task.succeeded pending 0 2 3000 ~ ~ 1 4000",
    }
    record = TaskRecord(TASK, join_fields(fields))
    first, second = record.delivery_ids("alpha")
    done = record.delivery(first)
    assert done is not None
    assert (done.type, done.status, done.attempt, done.series_start) == (
        "task.progress",
        "delivered",
        1,
        1000,
    )
    assert not done.superseded and not done.fresh
    again = record.delivery(second)
    assert again is not None
    assert again.superseded and again.fresh and again.series_start == 4000
    assert again.webhook_id == "msg_" + second.removeprefix("dlv_")
    assert record.delivery(keys.delivery_id(TASK, "12345678")) is None


@pytest.mark.parametrize(
    "attempt",
    [
        {"at": "2026-12-02T06:12:07.412Z", "status_code": 204, "error": None,
         "duration_ms": 3, "response": None},
        {"at": "2026-12-02T06:12:07.412Z", "status_code": None, "error": "timeout",
         "duration_ms": 10000, "response": "a \u001e b \u001d c"},
    ],
)  # fmt: skip
def test_an_attempt_is_stored_as_an_array_and_listed_as_before(attempt: dict[str, object]) -> None:
    raw = dump_attempt(attempt)
    assert raw.startswith("[") and ATTEMPT not in raw and "\x1e" not in raw
    assert load_attempt(raw) == attempt


def test_a_final_event_leaves_its_state_to_the_task() -> None:
    event = Event(type="task.succeeded", at=1.5, state=STATE, polls=3)
    final, progress = dump_event(event, final=True), dump_event(event, final=False)
    assert "state" not in final and "state" in progress
    other = TaskState(registered_at=2.0, deadline_at=3.0)
    assert load_event(final, lambda: other) == Event("task.succeeded", 1.5, other, 3)
    assert load_event(progress, lambda: other) == event


T0 = 1_800_000_000.123
RUNNING = TaskState(
    registered_at=T0,
    deadline_at=T0 + 10_800,
    status="running",
    upstream_status="processing",
    progress=45,
    task_type="imagine",
    model="midjourney",
    updated_at=T0 + 0.003,
    status_since=T0 + 0.003,
)
ENDED = TaskState(
    registered_at=T0,
    deadline_at=T0 + 10_800,
    status="failed",
    upstream_status="failed",
    result=Result(images=("https://cdn.example/a.png",), seed="42"),
    error="banned prompt",
    updated_at=T0 + 61.5,
    completed_at=T0 + 61.5,
    failed_since=T0 + 30.25,
    errors=2,
    not_found_since=T0 + 1,
    waiting_at=T0 + 2,
)


@pytest.mark.parametrize(
    ("state", "stored"),
    [
        (STATE, "[1800000000000,10800000]"),
        (RUNNING, '[1800000000123,10800000,"running","processing",45,"imagine","midjourney",3,3]'),
        (ENDED, None),
        (TaskState(registered_at=T0, deadline_at=T0, errors=1), None),
    ],
)
def test_a_state_is_stored_as_an_array_of_ms_without_its_trailing_defaults(
    state: TaskState, stored: str | None
) -> None:
    raw = dump_state(state)
    if stored is not None:
        assert raw == stored
    assert load_state(raw) == state
    assert dump_state(load_state(raw)) == raw  # the scripts compare states by their bytes


def test_a_state_is_kept_to_the_millisecond() -> None:
    state = TaskState(registered_at=1_800_000_000.4884434, deadline_at=1_800_010_800.4884434)
    assert load_state(dump_state(state)) == TaskState(
        registered_at=1_800_000_000.488, deadline_at=1_800_010_800.488
    )


def test_a_progress_event_keeps_its_state_and_a_final_one_leaves_it_to_the_task() -> None:
    progress = Event(type="task.progress", at=T0 + 1, state=RUNNING, polls=2)
    assert load_event(dump_event(progress, final=False), lambda: ENDED) == progress
    final = Event(type="task.failed", at=T0 + 62, state=ENDED, polls=9)
    assert load_event(dump_event(final, final=True), lambda: ENDED) == final
