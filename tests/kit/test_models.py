"""Reading the API's JSON into typed values: table-wise, pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from relay_client.models import (
    MalformedResource,
    parse_delivery,
    parse_page,
    parse_result,
    parse_task,
)

from tests.contract import RESOURCE_KEYS

TASK: dict[str, Any] = {
    "task_id": "550e8400-e29b-41d4-a716-446655440000",
    "status": "succeeded",
    "upstream_status": "finished",
    "progress": 100,
    "task_type": "imagine",
    "model": "midjourney",
    "result": {
        "images": ["https://cdn.example/0.png"],
        "grid_image": "https://cdn.example/grid.png",
        "videos": [],
        "content": [],
        "seed": None,
    },
    "error": None,
    "webhook_url": "https://hooks.example/in",
    "events": ["task.succeeded"],
    "metadata": {"user": 7},
    "registered_at": "2026-11-29T10:00:00.000Z",
    "updated_at": "2026-11-29T10:00:05.250Z",
    "completed_at": "2026-11-29T10:00:05.250Z",
    "polls": 3,
}


def test_the_sample_has_every_key_of_the_contract() -> None:
    assert set(TASK) == RESOURCE_KEYS


def test_a_task_is_read_whole() -> None:
    task = parse_task(TASK)
    assert task.task_id == TASK["task_id"]
    assert task.final and task.status == "succeeded" and task.progress == 100
    assert task.result.images == ("https://cdn.example/0.png",)
    assert task.result.grid_image == "https://cdn.example/grid.png"
    assert task.events == ("task.succeeded",)
    assert task.metadata == {"user": 7}
    assert task.registered_at == datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert task.completed_at == datetime(2026, 11, 29, 10, 0, 5, 250000, tzinfo=UTC)
    assert task.polls == 3 and task.upstream_webhook is False
    assert task.raw is TASK


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ({"status": "running", "completed_at": None}, lambda t: not t.final),
        ({"status": "queued"}, lambda t: not t.final),
        ({"status": "failed"}, lambda t: t.final),
        ({"status": "timed_out"}, lambda t: t.final),
        ({"upstream_webhook": True}, lambda t: t.upstream_webhook),
        ({"newer_field": {"x": 1}}, lambda t: t.raw["newer_field"] == {"x": 1}),
        ({"progress": None}, lambda t: t.progress is None),
        ({"result": {"images": [], "seed": "123"}}, lambda t: t.result.seed == "123"),
        ({"result": {"content": ["a", "b"]}}, lambda t: t.result.content == ("a", "b")),
    ],
)
def test_task_variants(change: dict[str, Any], check: Any) -> None:
    assert check(parse_task({**TASK, **change}))


@pytest.mark.parametrize(
    "body",
    [
        [],
        "task",
        {k: v for k, v in TASK.items() if k != "task_id"},
        {k: v for k, v in TASK.items() if k != "registered_at"},
        {**TASK, "updated_at": "yesterday"},
        {**TASK, "updated_at": 5},
        {**TASK, "metadata": [1]},
    ],
)
def test_what_is_not_a_task_is_refused(body: Any) -> None:
    with pytest.raises(MalformedResource):
        parse_task(body)


@pytest.mark.parametrize(
    ("body", "images", "seed"),
    [
        (None, (), None),
        ({}, (), None),
        ({"images": ["a"], "seed": 42}, ("a",), "42"),
        ({"images": None, "seed": "7"}, (), "7"),
    ],
)
def test_results(body: Any, images: tuple[str, ...], seed: str | None) -> None:
    result = parse_result(body)
    assert (result.images, result.seed) == (images, seed)


DELIVERY = {
    "id": "d1",
    "task_id": TASK["task_id"],
    "webhook_id": "msg_1",
    "type": "task.succeeded",
    "status": "failed",
    "attempts": [
        {"at": "2026-11-29T10:00:06Z", "status_code": 500, "error": None, "duration_ms": 12},
        {
            "at": "2026-11-29T10:00:07Z",
            "status_code": None,
            "error": "timeout",
            "duration_ms": 1000,
        },
    ],
}


def test_a_delivery_is_read_with_its_attempts() -> None:
    delivery = parse_delivery(DELIVERY)
    assert (delivery.id, delivery.webhook_id, delivery.status) == ("d1", "msg_1", "failed")
    assert [a.status_code for a in delivery.attempts] == [500, None]
    assert [a.error for a in delivery.attempts] == [None, "timeout"]
    assert delivery.attempts[1].duration_ms == 1000


@pytest.mark.parametrize(
    ("body", "count", "cursor"),
    [
        ({"tasks": [TASK, TASK], "next_cursor": "abc"}, 2, "abc"),
        ({"tasks": [], "next_cursor": None}, 0, None),
        ({"tasks": [TASK]}, 1, None),
        ({"tasks": [TASK], "next_cursor": ""}, 1, None),
    ],
)
def test_pages(body: Any, count: int, cursor: str | None) -> None:
    page = parse_page(body, "tasks", parse_task)
    assert (len(page.items), page.next_cursor) == (count, cursor)


@pytest.mark.parametrize("body", [{}, {"tasks": None}, {"tasks": {}}, []])
def test_a_page_without_its_list_is_refused(body: Any) -> None:
    with pytest.raises(MalformedResource):
        parse_page(body, "tasks", parse_task)
