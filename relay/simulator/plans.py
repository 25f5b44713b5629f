"""What one simulated task does over time, and what the upstream answers about it at time t.

Everything here is pure: a plan is derived from nothing but the task id, and an
answer from nothing but the plan and the elapsed time, so the simulator's
behaviour can be tested table-wise and replayed exactly.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, get_args

from relay.simulator.results import result_fields

Shape = Literal[
    "grid",
    "single",
    "video",
    "describe",
    "shorten",
    "seed",
    "failed",
    "retried",
    "sync",
    "unknown_word",
]
PercentageStyle = Literal["plain", "percent", "empty", "missing"]

SHAPES: Final[tuple[Shape, ...]] = get_args(Shape)
PERCENTAGE_STYLES: Final[tuple[PercentageStyle, ...]] = get_args(PercentageStyle)

# A word no relay has been taught; a relative of the upstream really sends it.
UNKNOWN_WORD: Final = "retrying"


@dataclass(frozen=True)
class Plan:
    """One simulated task: its identity, the shape of its result and how long each phase lasts.

    Phases run staged -> pending -> starting -> processing -> final. `retried` tasks
    spend half of `duration_seconds` processing, report `failed` for `retry_seconds`,
    then process again from zero for the full `duration_seconds`.
    """

    task_id: str
    task_type: str
    model: str
    shape: Shape
    staged_seconds: float
    queue_seconds: float
    starting_seconds: float
    duration_seconds: float
    percentage_style: PercentageStyle = "plain"
    retry_seconds: float = 0.0
    error: str = "Content policy violation"
    extra_fields: bool = False


class Phase(NamedTuple):
    """A stretch of time during which the upstream answers with one status word."""

    word: str
    seconds: float
    progress: bool  # percentage rises 0 -> 99 across the phase
    failed: bool  # answers carry `error` instead of a percentage


class _Kind(NamedTuple):
    """A family of task types that share a result shape and a duration range."""

    shape: Shape
    task_types: tuple[str, ...]
    models: tuple[str, ...]
    low: float
    high: float


# Ranges are the typical ones the upstream's peers document (NOTES.md).
_GRID = _Kind(
    "grid",
    (
        "imagine",
        "reroll",
        "variation-1",
        "variation-3",
        "variation-strong",
        "variation-subtle",
        "blend",
    ),
    ("midjourney", "niji-6"),
    30,
    90,
)
_UPSCALE = _Kind(
    "single",
    ("upscale#1", "upscale#4", "upscale-2x", "upscale-creative", "faceswap"),
    ("midjourney",),
    15,
    45,
)
_FLUX = _Kind("single", ("imagine",), ("flux-pro", "flux-dev"), 30, 90)
_VIDEO = _Kind(
    "video", ("imagine-video", "imagine-video-extend"), ("midjourney", "kling-v2"), 60, 300
)
_DESCRIBE = _Kind("describe", ("describe",), ("midjourney",), 10, 30)
_SHORTEN = _Kind("shorten", ("shorten",), ("midjourney",), 10, 30)
_SEED = _Kind("seed", ("seed",), ("midjourney",), 5, 15)
# Synchronous models answer `finished` at the very first fetch.
_SYNC = _Kind("sync", ("imagine",), ("flux-schnell", "flux-pro-ultra"), 0, 0)

_KINDS_BY_SHAPE: Final[dict[Shape, tuple[_Kind, ...]]] = {
    "grid": (_GRID,),
    "single": (_UPSCALE, _FLUX),
    "video": (_VIDEO,),
    "describe": (_DESCRIBE,),
    "shorten": (_SHORTEN,),
    "seed": (_SEED,),
    "failed": (_GRID, _UPSCALE, _FLUX, _VIDEO),
    "retried": (_GRID,),
    "sync": (_SYNC,),
    "unknown_word": (_GRID,),
}

# Happy paths dominate, as they do upstream, but every odd shape shows up often enough
# that a demo of a few dozen tasks meets each of them.
_SHAPE_WEIGHTS: Final[dict[Shape, int]] = {
    "grid": 25,
    "single": 15,
    "video": 8,
    "describe": 7,
    "shorten": 5,
    "seed": 6,
    "failed": 10,
    "retried": 7,
    "sync": 9,
    "unknown_word": 8,
}

_ERRORS: Final = (
    "Content policy violation",
    "Job timed out",
    "Invalid parameter: image prompt could not be loaded",
    "Internal server error",
)

RELAX_SHARE: Final = 0.15  # share of tasks that wait in the relax queue
RELAX_MAX_SECONDS: Final = 600.0
SHORT_QUEUE_MAX_SECONDS: Final = 5.0
STAGED_MAX_SECONDS: Final = 2.0
STARTING_MAX_SECONDS: Final = 5.0


def canonical_task_id(task_id: str) -> str:
    """The lower-case hyphenated form of a UUID, so spellings of one id share one plan."""
    try:
        return str(uuid.UUID(task_id))
    except ValueError:
        return task_id


def _rng(task_id: str, salt: str) -> random.Random:
    # A hash rather than Python's hash(): stable across processes and versions.
    digest = hashlib.sha256(f"{salt}:{task_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def plan_for(task_id: str, shape: Shape | None = None) -> Plan:
    """The stable, varied plan of `task_id`; `shape` forces the shape, the rest still derives."""
    task_id = canonical_task_id(task_id)
    rng = _rng(task_id, "plan")
    drawn_shape = rng.choices(list(_SHAPE_WEIGHTS), weights=list(_SHAPE_WEIGHTS.values()))[0]
    shape = shape or drawn_shape
    kind = rng.choice(_KINDS_BY_SHAPE[shape])
    task_type = rng.choice(kind.task_types)
    model = rng.choice(kind.models)
    style = rng.choices(PERCENTAGE_STYLES, weights=(70, 10, 10, 10))[0]
    extra_fields = rng.random() < 0.3
    error = rng.choice(_ERRORS)
    if shape == "sync":
        return Plan(
            task_id=task_id,
            task_type=task_type,
            model=model,
            shape=shape,
            staged_seconds=0.0,
            queue_seconds=0.0,
            starting_seconds=0.0,
            duration_seconds=0.0,
            percentage_style=style,
            error=error,
            extra_fields=extra_fields,
        )
    staged = round(rng.uniform(0, STAGED_MAX_SECONDS), 1)
    queue = rng.uniform(0, SHORT_QUEUE_MAX_SECONDS)
    if rng.random() < RELAX_SHARE:
        queue += rng.uniform(0, RELAX_MAX_SECONDS)
    starting = round(rng.uniform(1, STARTING_MAX_SECONDS), 1)
    duration = round(rng.uniform(kind.low, kind.high), 1)
    retry = round(rng.uniform(5, 20), 1) if shape == "retried" else 0.0
    return Plan(
        task_id=task_id,
        task_type=task_type,
        model=model,
        shape=shape,
        staged_seconds=staged,
        queue_seconds=round(queue, 1),
        starting_seconds=starting,
        duration_seconds=duration,
        percentage_style=style,
        retry_seconds=retry,
        error=error,
        extra_fields=extra_fields,
    )


def timeline(plan: Plan) -> tuple[Phase, ...]:
    """The phases before the final answer, in order; zero-length phases are left out."""
    if plan.shape == "sync":
        return ()
    running = UNKNOWN_WORD if plan.shape == "unknown_word" else "processing"
    phases = [
        Phase("staged", plan.staged_seconds, False, False),
        Phase("pending", plan.queue_seconds, False, False),
        Phase("starting", plan.starting_seconds, False, False),
    ]
    if plan.shape == "retried":
        phases += [
            Phase("processing", plan.duration_seconds / 2, True, False),
            Phase("failed", plan.retry_seconds, False, True),
        ]
    phases.append(Phase(running, plan.duration_seconds, True, False))
    return tuple(p for p in phases if p.seconds > 0)


def final_at(plan: Plan) -> float:
    """Seconds after the first sighting at which the final answer begins."""
    return sum(p.seconds for p in timeline(plan))


def is_final(plan: Plan, elapsed: float) -> bool:
    return elapsed >= final_at(plan)


def format_percentage(style: PercentageStyle, value: int) -> str | None:
    """The percentage as this plan's peer spells it; None means the key is left out."""
    if style == "missing":
        return None
    if style == "empty":
        return ""
    if style == "percent":
        return f"{value}%"
    return str(value)


def answer(plan: Plan, elapsed: float) -> dict[str, Any]:
    """The JSON body the upstream's fetch answers `elapsed` seconds after first seeing the task."""
    body: dict[str, Any] = {
        "task_id": plan.task_id,
        "task_type": plan.task_type,
        "model": plan.model,
    }
    start = 0.0
    for phase in timeline(plan):
        if elapsed < start + phase.seconds:
            body["status"] = phase.word
            if phase.failed:
                body["error"] = plan.error
            else:
                value = int(100 * (elapsed - start) / phase.seconds) if phase.progress else 0
                # "100" is kept for the finished answer, as the upstream does.
                _put_percentage(body, plan, max(0, min(99, value)))
            return _with_extras(body, plan)
        start += phase.seconds
    if plan.shape == "failed":
        # The documented failed answer carries `error` and no percentage.
        body["status"] = "failed"
        body["error"] = plan.error
    else:
        body["status"] = "finished"
        _put_percentage(body, plan, 100)
        body.update(result_fields(plan.task_id, _result_shape(plan), plan.model))
    return _with_extras(body, plan)


def _result_shape(plan: Plan) -> str:
    if plan.shape in ("retried", "unknown_word"):
        return "grid"
    if plan.shape == "sync":
        return "single"
    return plan.shape


def _put_percentage(body: dict[str, Any], plan: Plan, value: int) -> None:
    text = format_percentage(plan.percentage_style, value)
    if text is not None:
        body["percentage"] = text


def _with_extras(body: dict[str, Any], plan: Plan) -> dict[str, Any]:
    if plan.extra_fields:
        # The real upstream adds undocumented fields now and then; consumers must ignore them.
        offset = int(hashlib.sha256(plan.task_id.encode()).hexdigest()[:4], 16)  # < 65536 s
        hours, rest = divmod(offset, 3600)
        body["created_at"] = f"2026-11-29T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"
    return body
