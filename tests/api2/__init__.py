"""Scenario pieces the API-surface tests share."""

from __future__ import annotations

import uuid
from typing import Any

# A finished grid answer of the upstream, without its task_id.
GRID = {
    "task_type": "imagine",
    "model": "midjourney",
    "status": "finished",
    "percentage": "100",
    "original_image_url": "https://cdn.example/grid.png",
    "image_urls": [f"https://cdn.example/0_{i}.png" for i in range(4)],
}


def new_id() -> str:
    return str(uuid.uuid4())


def processing(task_id: str) -> dict[str, Any]:
    return {"task_id": task_id, "task_type": "imagine", "status": "processing", "percentage": "5"}
