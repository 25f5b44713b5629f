"""A ready webhook endpoint for Starlette (and so FastAPI): verify, deduplicate, hand the
event on, answer. Needs the `starlette` extra.

The answer comes before a callback runs (as a background task), so a slow handler does
not make the relay retry; `inline=True` awaits the handler first instead, and a failure
answers 500 so the relay tries again. A queue gets the event before the answer; a full
queue answers 503. A handling that fails forgets the id, so the retry is handed on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relay_client.receiver.dedup import Deduplicator, MemoryDeduplicator
from relay_client.receiver.errors import WebhookError
from relay_client.receiver.events import Event
from relay_client.receiver.verify import Verifier

logger = logging.getLogger("relay_client.receiver")

Handler = Callable[[Event], Awaitable[object]] | asyncio.Queue[Event]
Endpoint = Callable[[Request], Awaitable[Response]]

# A delivery is a task resource with at most 16 KiB of metadata: far below this.
MAX_BODY = 256 * 1024


def _answer(http_status: int, /, **body: str) -> JSONResponse:
    return JSONResponse(body, status_code=http_status)


async def _read(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _to_queue(
    queue: asyncio.Queue[Event], seen: Deduplicator
) -> Callable[[Event], Awaitable[Response]]:
    async def hand_on(event: Event) -> Response:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            await seen.release(event.id)
            return _answer(503, error="the receiver is busy")
        return _answer(200, status="accepted")

    return hand_on


def _to_callback(
    callback: Callable[[Event], Awaitable[object]], seen: Deduplicator, inline: bool
) -> Callable[[Event], Awaitable[Response]]:
    async def run(event: Event) -> bool:
        try:
            await callback(event)
        except Exception:
            logger.exception("webhook %s (%s): the handler failed", event.id, event.type)
            await seen.release(event.id)
            return False
        return True

    async def hand_on(event: Event) -> Response:
        if not inline:
            return JSONResponse({"status": "accepted"}, background=BackgroundTask(run, event))
        if await run(event):
            return _answer(200, status="accepted")
        return _answer(500, error="the handler failed")

    return hand_on


def webhook_endpoint(
    verifier: Verifier,
    handler: Handler,
    *,
    dedup: Deduplicator | None = None,
    inline: bool = False,
    max_body: int = MAX_BODY,
) -> Endpoint:
    """A request handler for `Route(path, endpoint, methods=["POST"])` or FastAPI's
    `app.add_api_route(path, endpoint, methods=["POST"])`. Without `dedup`, ids are kept in
    memory (one process); give a `RedisDeduplicator` when several processes receive."""
    seen: Deduplicator = dedup if dedup is not None else MemoryDeduplicator()
    hand_on = (
        _to_queue(handler, seen)
        if isinstance(handler, asyncio.Queue)
        else _to_callback(handler, seen, inline)
    )

    async def endpoint(request: Request) -> Response:
        try:
            body = await _read(request, max_body)
        except ClientDisconnect:
            return _answer(400, error="the sender went away mid-body")
        if body is None:
            return _answer(413, error=f"the body is over {max_body} bytes")
        try:
            event = verifier.receive(body, request.headers)
        except WebhookError as exc:
            logger.warning("webhook refused: %s", exc)
            return _answer(exc.status, error=str(exc))
        try:
            first = await seen.claim(event.id)
        except Exception:
            logger.exception("webhook %s: the deduplication store failed", event.id)
            return _answer(503, error="try again")
        if not first:
            return _answer(200, status="duplicate")
        return await hand_on(event)

    return endpoint


def webhook_app(
    verifier: Verifier,
    handler: Handler,
    *,
    path: str = "/",
    dedup: Deduplicator | None = None,
    inline: bool = False,
) -> Starlette:
    """A Starlette app of that one endpoint at `path`, to serve on its own or mount."""
    endpoint = webhook_endpoint(verifier, handler, dedup=dedup, inline=inline)
    return Starlette(routes=[Route(path, endpoint, methods=["POST"])])
