"""The upstream's own webhook: a fast path, handled exactly like a poll's answer."""

from __future__ import annotations

import asyncio
import hmac
import time

from starlette.requests import Request
from starlette.responses import Response

from relay.api.errors import ApiError, error_response
from relay.api.params import read_json
from relay.api.responses import JSONResponse
from relay.api.validation import parse_task_id
from relay.core import lifecycle
from relay.core.normalize import Malformed, normalize
from relay.store.polls import Outcome


async def upstream_webhook(request: Request) -> Response:
    """The upstream's own callback: a fast path, handled exactly like a poll's answer."""
    expected: str | None = request.app.state.settings.upstream_webhook_secret
    given = request.headers.get("x-webhook-secret", "")
    recorder = request.app.state.recorder
    if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
        recorder.inc("relay_upstream_webhooks_total", "unauthorized")
        raise ApiError(401, "unauthorized", "Missing or wrong x-webhook-secret")
    payload = await read_json(request)
    task_id = parse_task_id(payload.get("task_id")) if isinstance(payload, dict) else None
    if task_id is None:
        raise ApiError(400, "invalid_body", "The body must carry the task's task_id", "task_id")
    try:
        observation = normalize(payload, task_id)
    except Malformed as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None
    polls = request.app.state.polls
    for _ in range(5):  # a poll may write between our read and our write: read again
        current = await polls.read(task_id)
        if current is None:
            recorder.inc("relay_upstream_webhooks_total", "ignored")
            return JSONResponse({"status": "ignored"}, status_code=202)
        raw_state, state, count = current
        now = time.time()
        step = lifecycle.observe(state, observation, now, request.app.state.policy)
        if step.state == state:
            recorder.inc("relay_upstream_webhooks_total", "unchanged")
            return JSONResponse({"status": "unchanged"}, status_code=202)
        outcome = Outcome(task_id, raw_state, step, count, lease=None, count_poll=False)
        (reply,) = await polls.apply([outcome], now)
        if reply == "ok":
            recorder.inc("relay_upstream_webhooks_total", "accepted")
            return JSONResponse({"status": "accepted"}, status_code=202)
        await asyncio.sleep(0.01)
    return error_response(503, "busy", "The task is changing; the upstream may retry")
