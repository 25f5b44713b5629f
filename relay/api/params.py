"""Reading requests: JSON bodies within bounds, path ids, query parameters, cursors."""

from __future__ import annotations

import base64
import binascii
import math

import msgspec
from starlette.requests import ClientDisconnect, Request

from relay.api.errors import ApiError
from relay.api.validation import MAX_BODY, decode_json, parse_task_id
from relay.store.registry import Page


async def read_json(request: Request) -> object:
    """The request's JSON body, refusing what is too large or not JSON."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, "body_too_large", f"The body must be at most {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, "body_too_large", f"The body must be at most {MAX_BODY} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "bad_request", "The client went away mid-body") from None
    if not size:
        raise ApiError(400, "invalid_json", "The body is empty; send a JSON object")
    return decode_json(b"".join(chunks))


def path_task_id(request: Request) -> str:
    task_id = parse_task_id(request.path_params["task_id"])
    if task_id is None:
        raise ApiError(404, "not_found", "No such task")
    return task_id


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"{name} must be an integer", name) from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_query", f"{name} must be from {low} to {high}", name)
    return value


MAX_CURSOR = 4096


def query_cursor(request: Request) -> Page | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        if len(raw) > MAX_CURSOR:
            raise ValueError("too long")
        # Decoded to its exact shape, so a nested payload fails at its first level
        # instead of recursing (msgspec recurses on the C stack for untyped JSON).
        score, member = msgspec.json.decode(
            base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)), type=tuple[float, str]
        )
    except (ValueError, TypeError, binascii.Error, msgspec.DecodeError, RecursionError):
        score, member = math.nan, ""
    if not math.isfinite(score):
        raise ApiError(400, "invalid_query", "cursor is not one this API gave", "cursor")
    return Page(score, member)


def cursor_text(page: Page | None) -> str | None:
    if page is None:
        return None
    return (
        base64.urlsafe_b64encode(msgspec.json.encode([page.score, page.member]))
        .decode()
        .rstrip("=")
    )
