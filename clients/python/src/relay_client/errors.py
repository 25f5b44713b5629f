"""The relay's error answers as exceptions: one base class, one subclass per family or code.

Every error the API sends is `{"error": {"code", "message", "field"?}}`; the exception
carries the three, and the HTTP status. Catch `RelayError` for all of them, a family
(`ClientError`, `ServerError`) or one kind (`NotFound`, `Conflict`, `QuotaExceeded`...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class RelayError(Exception):
    """An error answer of the relay, or no answer at all (`status` None)."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str = "", field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field

    def __str__(self) -> str:
        where = f" (field {self.field!r})" if self.field else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.code or 'error'}: {self.message}{where}"


class RelayConnectionError(RelayError):
    """The relay could not be reached, or the connection broke, on every attempt."""


class UnexpectedResponse(RelayError):
    """An answer that is not what the contract describes (a proxy's page, say)."""


class ClientError(RelayError):
    """A 4xx: the request is at fault; sending it again unchanged will not help."""


class BadRequest(ClientError):
    """400: the body is not JSON, or a query parameter is wrong."""


class Unauthorized(ClientError):
    """401: the API key is missing or unknown."""


class NotFound(ClientError):
    """404: no such task or delivery for this key's tenant."""


class Conflict(ClientError):
    """409: the task is registered already with another value of `field`."""


class NoEvent(Conflict):
    """409 `no_event`: the task has no event to redeliver yet."""


class PayloadTooLarge(ClientError):
    """413: the body is over the relay's limit."""


class UnsupportedMediaType(ClientError):
    """415: the body was not sent as JSON."""


class InvalidField(ClientError):
    """422: a field is wrong; `field` names it."""


class TooManyRequests(ClientError):
    """429."""


class QuotaExceeded(TooManyRequests):
    """429 `quota_exceeded`: the tenant tracks as many tasks as it may."""


class ServerError(RelayError):
    """A 5xx."""


class Unavailable(ServerError):
    """503: the relay's storage is unreachable for now."""


_BY_CODE: dict[str, type[RelayError]] = {
    "quota_exceeded": QuotaExceeded,
    "no_event": NoEvent,
}
_BY_STATUS: dict[int, type[RelayError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidField,
    429: TooManyRequests,
    503: Unavailable,
}


def _detail(body: bytes) -> Mapping[str, Any] | None:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    detail = parsed.get("error") if isinstance(parsed, dict) else None
    return detail if isinstance(detail, dict) else None


def _family(status: int) -> type[RelayError]:
    if status >= 500:
        return ServerError
    return ClientError if status >= 400 else UnexpectedResponse


def error_for(status: int, body: bytes) -> RelayError:
    """The exception for an error answer: by its code where one has its own class, else by
    its status, else by its family. Pure."""
    detail = _detail(body)
    if detail is None:
        text = body[:200].decode("utf-8", "replace").strip() or "no body"
        kind = _BY_STATUS.get(status) or _family(status)
        return kind(f"HTTP {status}: {text}", status=status)
    code = str(detail.get("code") or "")
    field = detail.get("field")
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status) or _family(status)
    return kind(
        str(detail.get("message") or code or f"HTTP {status}"),
        status=status,
        code=code,
        field=None if field is None else str(field),
    )
