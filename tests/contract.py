"""What the relay's contract fixes, shared by the tests.

The contract is the README's "The HTTP API" and "Webhooks, for consumers". The upstream's
own documentation page's example answers are support.payloads'.
"""

from __future__ import annotations

import re

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
