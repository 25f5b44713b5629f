"""The kit for both sides: the Python client, the receiver kit, the TypeScript example."""

from __future__ import annotations

from support.payloads import finished, new_id, processing
from support.servers import ScriptedUpstream
from tests.conftest import API_KEYS, WEBHOOK_SECRET, Api

# The test session's keys, by tenant: alpha has two (a rotation), beta one.
ALPHA, ALPHA_2, BETA = (entry.split("=", 1)[1] for entry in API_KEYS.split(","))

__all__ = ["ALPHA", "ALPHA_2", "BETA", "WEBHOOK_SECRET", "base_url", "finishing"]


def base_url(api: Api) -> str:
    return f"http://127.0.0.1:{api.port}"


def finishing(upstream: ScriptedUpstream) -> str:
    """A new task that the upstream answers `processing`, then `finished` (a grid)."""
    task_id = new_id()
    upstream.script(task_id, processing(task_id), finished(task_id))
    return task_id
