"""The upstream's `POST /api/v1/fetch` answers, as its documentation page ("Fetch Task") shows them.

The page's example answers stand first, verbatim; the builders below make answers of the
same shapes for any task id.
"""

from __future__ import annotations

import uuid
from typing import Any

TASK = "550e8400-e29b-41d4-a716-446655440000"
FLUX_TASK = "661f9511-f30c-52e5-b827-557766551111"

# --- verbatim from the upstream's fetch page's example answers --------------------------------

PROCESSING = {
    "task_id": "550e8400-e29b-41d4-a716-446655440000",
    "task_type": "imagine",
    "model": "midjourney",
    "status": "processing",
    "percentage": "45",
}

FINISHED_GRID = {
    "task_id": "550e8400-e29b-41d4-a716-446655440000",
    "task_type": "imagine",
    "model": "midjourney",
    "status": "finished",
    "percentage": "100",
    "original_image_url": "https://cdn.midjourney.com/abc123/grid_0.png",
    "image_urls": [
        "https://cdn.midjourney.com/abc123/0_0.png",
        "https://cdn.midjourney.com/abc123/0_1.png",
        "https://cdn.midjourney.com/abc123/0_2.png",
        "https://cdn.midjourney.com/abc123/0_3.png",
    ],
}

FINISHED_FLUX = {
    "task_id": "661f9511-f30c-52e5-b827-557766551111",
    "task_type": "imagine",
    "model": "flux-pro",
    "status": "finished",
    "percentage": "100",
    "image_url": "https://images.journeyapi.com/flux/abc123.png",
}

FAILED = {
    "task_id": "550e8400-e29b-41d4-a716-446655440000",
    "task_type": "imagine",
    "model": "midjourney",
    "status": "failed",
    "error": "Content policy violation",
}

# --- the same shapes for any task -------------------------------------------------------------

# The page's finished grid answer without its task_id: `{"task_id": ..., **GRID}` is one.
GRID = {key: value for key, value in FINISHED_GRID.items() if key != "task_id"}


def new_id() -> str:
    """A task id of the upstream's form (a UUID)."""
    return str(uuid.uuid4())


def new_ids(count: int) -> list[str]:
    return [new_id() for _ in range(count)]


def answer(task_id: str, status: str, **fields: Any) -> dict[str, Any]:
    """One fetch answer of a Midjourney imagine task; `fields` add or replace keys."""
    return {
        "task_id": task_id,
        "task_type": "imagine",
        "model": "midjourney",
        "status": status,
        **fields,
    }


def processing(task_id: str, percentage: str = "5") -> dict[str, Any]:
    return answer(task_id, "processing", percentage=percentage)


def finished(task_id: str) -> dict[str, Any]:
    """The page's finished grid answer, for `task_id`."""
    return {"task_id": task_id, **GRID}


def finished_grid(task_id: str) -> dict[str, Any]:
    """A finished grid answer whose URLs are the task's own, as real ones are: the size of a
    real answer when many tasks are stored (the benchmarks)."""
    base = f"https://cdn.midjourney.com/{task_id.replace('-', '')[:12]}"
    return answer(
        task_id,
        "finished",
        percentage="100",
        original_image_url=f"{base}/grid_0.png",
        image_urls=[f"{base}/0_{i}.png" for i in range(4)],
    )
