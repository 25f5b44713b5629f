"""The upstream's own webhook: a signal to fetch the task now, never data to believe."""

from __future__ import annotations

import hmac
import time

from starlette.requests import Request
from starlette.responses import Response

from relay.api.context import context
from relay.api.errors import ApiError
from relay.api.params import read_json
from relay.api.responses import JSONResponse
from relay.api.validation import parse_task_id
from relay.core import callbacks
from relay.core.normalize import Malformed, normalize


async def upstream_webhook(request: Request) -> Response:
    """The upstream's own callback: the task is fetched at once and its state taken from
    that fetch, so a body that disagrees with the upstream's own fetch changes nothing.

    The fetch goes through the poll schedule, within the shared rate limit and
    counted in `polls`; it is repeated shortly if it still answers the old state.
    """
    ctx = context(request)
    expected: str | None = ctx.settings.upstream_webhook_secret
    given = request.headers.get("x-webhook-secret", "")
    recorder = ctx.recorder
    if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
        recorder.inc("relay_upstream_webhooks_total", "unauthorized")
        raise ApiError(401, "unauthorized", "Missing or wrong x-webhook-secret")
    payload = await read_json(request)
    task_id = parse_task_id(payload.get("task_id")) if isinstance(payload, dict) else None
    if task_id is None:
        raise ApiError(400, "invalid_body", "The body must carry the task's task_id", "task_id")
    try:
        # Only checked, so that a malformed callback is told so; never applied.
        normalize(payload, task_id)
    except Malformed as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None
    tracked = await ctx.polls.signal(task_id, time.time(), callbacks.SIGNALS)
    outcome = "signalled" if tracked else "ignored"
    recorder.inc("relay_upstream_webhooks_total", outcome)
    return JSONResponse({"status": outcome}, status_code=202)
