"""Misbehaviour to inject into the next fetch calls: every undocumented answer NOTES.md warns of."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, get_args

from starlette.responses import JSONResponse, Response

FaultKind = Literal["status", "non_json", "wrong_shape", "errors_400", "slow", "disconnect"]
BodyKind = Literal["empty", "json", "html"]
WrongShape = Literal["list", "no_status"]

FAULT_KINDS: Final[tuple[FaultKind, ...]] = get_args(FaultKind)
BODY_KINDS: Final[tuple[BodyKind, ...]] = get_args(BodyKind)
WRONG_SHAPES: Final[tuple[WrongShape, ...]] = get_args(WrongShape)
FAULT_STATUSES: Final = (401, 404, 429, 500, 502, 503)

_REASONS: Final = {
    401: "Unauthorized",
    404: "Task not found",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


_T = TypeVar("_T", bound=str)


class FaultError(ValueError):
    """A fault description that cannot be honoured; the message says which field is wrong."""


@dataclass
class Fault:
    kind: FaultKind
    remaining: int  # fetch calls still to spoil; -1 means until cleared
    task_id: str | None = None
    status: int = 500
    retry_after: str | None = None
    body: BodyKind = "json"
    seconds: float = 0.0
    variant: WrongShape = "list"
    msg: str = "task_id: value is not a valid uuid"

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.remaining,
            "task_id": self.task_id,
            "status": self.status,
            "retry_after": self.retry_after,
            "body": self.body,
            "seconds": self.seconds,
            "variant": self.variant,
            "msg": self.msg,
        }


def _number(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{key}: must be a number")
    if not math.isfinite(value) or value < 0:
        raise FaultError(f"{key}: must be a finite number >= 0")
    return float(value)


def _choice(data: dict[str, Any], key: str, allowed: tuple[_T, ...], default: _T) -> _T:
    value = data.get(key, default)
    for option in allowed:
        if value == option:
            return option
    raise FaultError(f"{key}: must be one of {', '.join(allowed)}")


def parse_fault(data: Any, task_id: str | None) -> Fault:
    """Validate a `/sim/faults` body; `task_id` is the already-validated target, if any."""
    if not isinstance(data, dict):
        raise FaultError("body: must be a JSON object")
    kind = data.get("kind")
    if kind not in FAULT_KINDS:
        raise FaultError(f"kind: must be one of {', '.join(FAULT_KINDS)}")
    count = data.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or (count < 1 and count != -1):
        raise FaultError("count: must be a positive integer, or -1 for until cleared")
    fault = Fault(kind=kind, remaining=count, task_id=task_id)
    if kind == "status":
        status = data.get("status")
        if status not in FAULT_STATUSES:
            raise FaultError(f"status: must be one of {', '.join(map(str, FAULT_STATUSES))}")
        fault.status = status
        # A 5xx from a proxy in front of the upstream is usually an HTML page.
        default_body: BodyKind = "html" if status >= 500 else "json"
        fault.body = _choice(data, "body", BODY_KINDS, default_body)
        fault.retry_after = _retry_after(data.get("retry_after"))
    elif kind == "slow":
        fault.seconds = _number(data, "seconds", 5.0)
    elif kind == "wrong_shape":
        fault.variant = _choice(data, "variant", WRONG_SHAPES, "list")
    elif kind == "errors_400":
        msg = data.get("msg", fault.msg)
        if not isinstance(msg, str):
            raise FaultError("msg: must be a string")
        fault.msg = msg
    return fault


def _retry_after(value: Any) -> str | None:
    if value is None:
        return None
    # A string passes through untouched so HTTP-date forms and garbage can be tried too.
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultError("retry_after: must be seconds >= 0 or a string")
    if not math.isfinite(value):
        raise FaultError("retry_after: must be finite")
    return str(int(value)) if float(value).is_integer() else str(value)


class FaultQueue:
    """Faults in the order they were injected; the first that matches a call spoils it."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def __len__(self) -> int:
        return len(self._faults)

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, task_id: str | None) -> Fault | None:
        """The fault for a call about `task_id` (None: no readable id), consuming one use of it."""
        for fault in self._faults:
            if fault.task_id is None or fault.task_id == task_id:
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [fault.describe() for fault in self._faults]


def errors_response(status: int, msg: str) -> JSONResponse:
    """The `{"errors": [{"msg": ...}]}` shape a close relative of the upstream documents."""
    return JSONResponse({"errors": [{"msg": msg}]}, status_code=status)


def render(fault: Fault, task_id: str | None) -> Response:
    """The spoiled answer for the kinds that replace the answer outright."""
    if fault.kind == "non_json":
        return Response(_html(200, "OK"), status_code=200, media_type="text/html")
    if fault.kind == "wrong_shape":
        if fault.variant == "list":
            return JSONResponse([{"task_id": task_id, "status": "processing"}])
        return JSONResponse({"task_id": task_id, "percentage": "50", "message": "ok"})
    if fault.kind == "errors_400":
        return errors_response(400, fault.msg)
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    reason = _REASONS.get(fault.status, "Error")
    if fault.body == "empty":
        return Response(b"", status_code=fault.status, headers=headers)
    if fault.body == "html":
        return Response(
            _html(fault.status, reason),
            status_code=fault.status,
            headers=headers,
            media_type="text/html",
        )
    # The upstream answers a bad key with an empty object, nothing more.
    content: dict[str, Any] = {} if fault.status == 401 else {"errors": [{"msg": reason}]}
    return JSONResponse(content, status_code=fault.status, headers=headers)


def _html(status: int, reason: str) -> str:
    return (
        f"<html><head><title>{status} {reason}</title></head>"
        f"<body><center><h1>{status} {reason}</h1></center><hr><center>nginx</center></body>"
        "</html>\n"
    )
