"""The pure parts of a task's record: delivery ids, the fields, the stored shapes."""

from __future__ import annotations

import pytest

from relay.core.model import Event, TaskState
from relay.store import keys
from relay.store.codec import dump_attempt, dump_event, load_attempt, load_event
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
    assert delivery_id.startswith("dlv_") and len(delivery_id) == 44
    assert keys.delivery_task(delivery_id) == (task_id, key)
    assert keys.delivery_shard(delivery_id) == keys.shard_of(task_id)


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
