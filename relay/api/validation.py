"""Reading a registration request: every mistake named by its field. Pure."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import msgspec

from relay.api.errors import ApiError
from relay.core.model import DEFAULT_EVENTS, EVENT_TYPES
from relay.core.resource import RegistrationBody

MAX_BODY = 64 * 1024
MAX_METADATA = 16 * 1024
MAX_METADATA_DEPTH = 32
MAX_URL = 2048


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_field", message, field)


def parse_task_id(value: Any) -> str | None:
    """The canonical lower-case form of a UUID, or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    # Only the canonical 8-4-4-4-12 spelling, not braces or URNs.
    return str(parsed) if str(parsed) == value.lower() else None


def decode_json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None
    except RecursionError:
        if deepest_member(body) == "metadata":
            raise _too_deep() from None
        raise ApiError(400, "invalid_json", "The body's JSON is nested too deeply") from None


def deepest_member(body: bytes) -> str | None:
    """The member of the body's top-level object under which it nests deepest.

    Read byte by byte, without recursion, to name the field at fault once a
    decoder found the body too deep for it; None if the body is no object.
    """
    if not body.lstrip().startswith(b"{"):
        return None
    depth = deepest = 0
    member = found = None
    in_string = escaped = False
    start = 0
    last_string = b""
    for i, byte in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
                last_string = body[start : i + 1]
        elif byte == 0x22:
            in_string, start = True, i
        elif byte in b"{[":
            depth += 1
            if depth > deepest:
                deepest, found = depth, member
        elif byte in b"}]":
            depth -= 1
        elif byte == 0x3A and depth == 1:  # the colon after a top-level member's name
            try:
                member = msgspec.json.decode(last_string, type=str)
            except msgspec.DecodeError:
                member = None
    return found


def _too_deep() -> ApiError:
    return invalid("metadata", f"metadata must nest at most {MAX_METADATA_DEPTH} levels deep")


def parse_registration(payload: Any) -> RegistrationBody:
    """The registration body, every field checked and its default filled in."""
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_body", "The body must be a JSON object")
    if "task_id" not in payload or payload["task_id"] is None:
        raise ApiError(422, "missing_field", "task_id is required", "task_id")
    task_id = parse_task_id(payload["task_id"])
    if task_id is None:
        raise invalid("task_id", "task_id must be a UUID like 550e8400-e29b-41d4-a716-446655440000")
    return RegistrationBody(
        task_id=task_id,
        webhook_url=_webhook_url(payload.get("webhook_url")),
        events=list(_events(payload.get("events"))),  # type: ignore[arg-type]
        metadata=_metadata(payload.get("metadata")),
        upstream_webhook=_flag("upstream_webhook", payload.get("upstream_webhook")),
    )


def _flag(field: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(field, f"{field} must be true or false")
    return value


def _webhook_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid("webhook_url", "webhook_url must be a string")
    if len(value) > MAX_URL:
        raise invalid("webhook_url", f"webhook_url must be at most {MAX_URL} characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise invalid("webhook_url", "webhook_url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("webhook_url", "webhook_url must be an absolute http:// or https:// URL")
    if port == 0 or any(c.isspace() for c in value):
        raise invalid("webhook_url", "webhook_url is not a valid URL")
    return value


def _events(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_EVENTS
    if not isinstance(value, list):
        raise invalid("events", "events must be a list of event types")
    for item in value:
        if item not in EVENT_TYPES:
            raise invalid("events", f"unknown event type {item!r}; known: {', '.join(EVENT_TYPES)}")
    return tuple(e for e in EVENT_TYPES if e in value)


def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("metadata", "metadata must be a JSON object")
    if nesting_depth(value, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
        raise _too_deep()
    if len(msgspec.json.encode(value)) > MAX_METADATA:
        raise invalid("metadata", f"metadata must be at most {MAX_METADATA} bytes as JSON")
    return value


def nesting_depth(value: Any, limit: int) -> int:
    """Levels of objects and arrays in `value` (a scalar is 0), counted up to limit + 1.

    Without recursion, and stopping past the limit, so however deep the input
    the answer costs at most the size of its first `limit` levels.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return deepest
