"""Turn whatever the upstream's fetch answered into an `Observation`, or say why not.

The upstream's shapes vary by task type and model, and undocumented fields
come and go: the shape of a result is derived from the fields present, never
from a closed list of task types, and anything unexpected is skipped rather
than trusted.
"""

from __future__ import annotations

import math
from typing import Any

from relay.core.model import EMPTY_RESULT, Observation, Result, Status

_STATUS_WORDS: dict[str, Status] = {
    "staged": "queued",
    "pending": "queued",
    "starting": "running",
    "processing": "running",
    "finished": "succeeded",
    "failed": "failed",
}

MAX_TEXT = 2048  # an error message or model name longer than this is cut
MAX_ITEMS = 64  # URLs or content lines kept per result field


class Malformed(ValueError):
    """The answer cannot be read as a task status; the message says why."""


def map_status(word: str) -> Status:
    """The contract's status for an upstream status word; unknown words mean still running."""
    return _STATUS_WORDS.get(word.strip().lower(), "running")


def parse_percentage(value: Any) -> int | None:
    """Read "45", "45%", 45, 45.7 or " 45 " as 45; anything unreadable as None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    elif isinstance(value, int):
        return max(0, min(100, value))
    elif isinstance(value, float):
        number = value
    else:
        return None
    if not math.isfinite(number):
        return None
    return max(0, min(100, int(number)))


def normalize(payload: Any, task_id: str | None = None) -> Observation:
    """Read one fetch answer. Raises `Malformed` when it says nothing usable."""
    if not isinstance(payload, dict):
        raise Malformed(f"expected a JSON object, got {type(payload).__name__}")
    word = payload.get("status")
    if not isinstance(word, str) or not word.strip():
        raise Malformed("no status word in the answer")
    answered_id = payload.get("task_id")
    if (
        task_id is not None
        and isinstance(answered_id, str)
        and answered_id.lower() != task_id.lower()
    ):
        raise Malformed("the answer is about another task")

    upstream_status = _text(word.strip()) or word
    status = map_status(upstream_status)
    progress = 100 if status == "succeeded" else parse_percentage(payload.get("percentage"))
    error = _text(payload.get("error")) if status == "failed" else None
    if status == "failed" and error is None:
        error = "The upstream reported the task as failed without a reason"
    return Observation(
        upstream_status=upstream_status,
        status=status,
        progress=progress,
        task_type=_text(payload.get("task_type")),
        model=_text(payload.get("model")),
        result=_result(payload),
        error=error,
    )


def _result(payload: dict[str, Any]) -> Result:
    images = _strings(payload.get("image_urls"))
    if not images:
        images = _strings(payload.get("image_url"))
    videos = _strings(payload.get("video_urls")) or _strings(payload.get("video_url"))
    result = Result(
        images=images,
        grid_image=_url(payload.get("original_image_url")),
        videos=videos,
        content=_strings(payload.get("content"), urls_only=False),
        seed=_seed(payload.get("seed")),
    )
    return EMPTY_RESULT if result == EMPTY_RESULT else result


def _strings(value: Any, *, urls_only: bool = True) -> tuple[str, ...]:
    """A list of strings, or one string as a list of one; other items are skipped."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if not items:
        return ()  # most answers, on every poll of a task still running
    keep = _url if urls_only else _text
    kept = (keep(item) for item in items)
    found = tuple(item for item in kept if item is not None)[:MAX_ITEMS]
    return found if found else ()


def _url(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value[:MAX_TEXT] if value.strip() else None
    if isinstance(value, dict):
        # Peers nest errors as {"message": ...} or {"msg": ...}.
        for key in ("message", "msg", "detail"):
            if isinstance(value.get(key), str):
                return _text(value[key])
    return None


def _seed(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than Python will print
            return None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None
