"""What the relay's contract and the upstream's own documentation fix, shared by the tests.

The contract is the README's "The HTTP API" and "Webhooks, for consumers"; the upstream's
is its documentation page for `POST /api/v1/fetch` ("Fetch Task"), whose example answers
are copied below as they stand.
"""

from __future__ import annotations

import re

TASK = "550e8400-e29b-41d4-a716-446655440000"
FLUX_TASK = "661f9511-f30c-52e5-b827-557766551111"

# The task resource's keys (README.md, "The task resource"), its result's, its timestamps' form.
RESOURCE_KEYS = {
    "task_id",
    "status",
    "upstream_status",
    "progress",
    "task_type",
    "model",
    "result",
    "error",
    "webhook_url",
    "events",
    "metadata",
    "registered_at",
    "updated_at",
    "completed_at",
    "polls",
}
RESULT_KEYS = {"images", "grid_image", "videos", "content", "seed"}
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

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
