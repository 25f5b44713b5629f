"""Error answers become exceptions carrying the contract's code, message and field."""

from __future__ import annotations

import json

import pytest
from relay_client import errors as e


def body(code: str, message: str = "m", field: str | None = None) -> bytes:
    detail = {"code": code, "message": message} | ({"field": field} if field else {})
    return json.dumps({"error": detail}).encode()


@pytest.mark.parametrize(
    ("status", "raw", "kind", "code", "field"),
    [
        (400, body("invalid_json"), e.BadRequest, "invalid_json", None),
        (400, body("invalid_query", field="cursor"), e.BadRequest, "invalid_query", "cursor"),
        (401, body("unauthorized"), e.Unauthorized, "unauthorized", None),
        (404, body("not_found"), e.NotFound, "not_found", None),
        (409, body("conflict", field="webhook_url"), e.Conflict, "conflict", "webhook_url"),
        (409, body("no_event"), e.NoEvent, "no_event", None),
        (413, body("body_too_large"), e.PayloadTooLarge, "body_too_large", None),
        (
            415,
            body("unsupported_media_type"),
            e.UnsupportedMediaType,
            "unsupported_media_type",
            None,
        ),
        (422, body("invalid_field", field="events"), e.InvalidField, "invalid_field", "events"),
        (422, body("missing_field", field="task_id"), e.InvalidField, "missing_field", "task_id"),
        (429, body("quota_exceeded"), e.QuotaExceeded, "quota_exceeded", None),
        (429, body("slow_down"), e.TooManyRequests, "slow_down", None),
        (503, body("unavailable"), e.Unavailable, "unavailable", None),
        (500, body("internal"), e.ServerError, "internal", None),
        (418, body("teapot"), e.ClientError, "teapot", None),
        (502, b"<html>bad gateway</html>", e.ServerError, "", None),
        (503, b"", e.Unavailable, "", None),
        (404, b"not json", e.NotFound, "", None),
        (302, b"", e.UnexpectedResponse, "", None),
        (400, b'{"error": "flat"}', e.BadRequest, "", None),
    ],
)
def test_error_for(
    status: int, raw: bytes, kind: type[e.RelayError], code: str, field: str | None
) -> None:
    error = e.error_for(status, raw)
    assert type(error) is kind
    assert (error.status, error.code, error.field) == (status, code, field)
    assert isinstance(error, e.RelayError)


def test_the_message_and_the_field_are_in_the_text() -> None:
    error = e.error_for(409, body("conflict", "already registered with another events", "events"))
    assert error.message == "already registered with another events"
    assert str(error) == "409 conflict: already registered with another events (field 'events')"


def test_a_body_that_is_not_json_is_quoted_shortly() -> None:
    error = e.error_for(502, b"x" * 5000)
    assert error.message == "HTTP 502: " + "x" * 200
