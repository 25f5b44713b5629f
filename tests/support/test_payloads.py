"""support.payloads: the builders make the fetch page's own shapes, and the relay reads them so."""

from __future__ import annotations

from typing import Any

import pytest

from relay.core.normalize import normalize
from support.payloads import (
    FINISHED_GRID,
    GRID,
    PROCESSING,
    TASK,
    answer,
    finished,
    finished_grid,
    new_id,
    new_ids,
    processing,
)


def test_finished_is_the_pages_grid_answer() -> None:
    assert finished(TASK) == FINISHED_GRID
    assert "task_id" not in GRID


def test_processing_has_the_pages_keys() -> None:
    assert processing(TASK, "45") == PROCESSING
    assert processing(TASK)["percentage"] == "5"


def test_answer_fields_add_and_replace() -> None:
    made = answer(TASK, "finished", model="flux-pro", image_url="https://x.example/a.png")
    assert made["model"] == "flux-pro" and made["image_url"] == "https://x.example/a.png"
    assert made["task_id"] == TASK and made["status"] == "finished"


def test_finished_grid_urls_are_the_tasks_own() -> None:
    one, other = new_ids(2)
    assert one != other
    assert finished_grid(one)["image_urls"] != finished_grid(other)["image_urls"]
    assert set(finished_grid(one)) == set(FINISHED_GRID)


@pytest.mark.parametrize(
    ("payload", "status", "progress"),
    [
        pytest.param(processing(TASK, "30"), "running", 30, id="processing"),
        pytest.param(finished(TASK), "succeeded", 100, id="finished"),
        pytest.param(finished_grid(TASK), "succeeded", 100, id="finished-grid"),
    ],
)
def test_the_relay_reads_them(payload: dict[str, Any], status: str, progress: int) -> None:
    observation = normalize(payload, TASK)
    assert (observation.status, observation.progress) == (status, progress)


def test_new_ids_are_distinct_uuids() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 36 and i.count("-") == 4 for i in ids)
