"""The store's scripts driven directly against the test session's Redis."""

from __future__ import annotations

import time
import uuid
from typing import Any

from relay.core.model import Registration


def registration(task_id: str, tenant: str, **fields: Any) -> Registration:
    """A registration as the API would make it, now, with a fresh rid."""
    return Registration(
        tenant=tenant,
        task_id=task_id,
        registered_at=fields.pop("registered_at", round(time.time(), 3)),
        rid=uuid.uuid4().hex[:16],
        **fields,
    )
