"""What one HTTP answer of the upstream's fetch call means (relay.upstream.client.classify).

The 200 bodies are the fetch page's own examples (shared/upstream/fetch-endpoint.txt) and the
shapes shared/upstream/NOTES.md describes; the faults are the ones NOTES.md says to be ready
for: 401 `{}`, 404, 429 with or without Retry-After, 5xx with empty or non-JSON bodies,
answers that are not JSON at all, and 400 answers shaped `{"errors": [{"msg": ...}]}`.
"""

from __future__ import annotations

import json
import math
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.upstream.client import FetchResult, classify, parse_retry_after
from support.payloads import (
    FAILED,
    FINISHED_FLUX,
    FINISHED_GRID,
    FLUX_TASK,
    PROCESSING,
    TASK,
)

NOW = 1_764_410_400.0  # 2025-11-29T10:00:00Z, a whole second so HTTP dates are exact


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def http_date(at: float) -> str:
    return formatdate(at, usegmt=True)


# --- verbatim from fetch-endpoint.txt ---------------------------------------------------------


# --- 200: ok ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_id", "payload", "status", "upstream_status", "progress"),
    [
        pytest.param(TASK, PROCESSING, "running", "processing", 45, id="page-processing"),
        pytest.param(TASK, FINISHED_GRID, "succeeded", "finished", 100, id="page-finished-grid"),
        pytest.param(
            FLUX_TASK, FINISHED_FLUX, "succeeded", "finished", 100, id="page-finished-flux"
        ),
        pytest.param(TASK, FAILED, "failed", "failed", None, id="page-failed"),
        pytest.param(
            TASK, {"task_id": TASK, "status": "staged"}, "queued", "staged", None, id="staged"
        ),
        pytest.param(
            TASK, {"task_id": TASK, "status": "pending"}, "queued", "pending", None, id="pending"
        ),
        pytest.param(
            TASK,
            {"task_id": TASK, "status": "starting", "percentage": ""},
            "running",
            "starting",
            None,
            id="starting-empty-percentage",
        ),
        pytest.param(
            TASK,
            {"task_id": TASK, "status": "processing", "percentage": "45%"},
            "running",
            "processing",
            45,
            id="percentage-with-sign",
        ),
        pytest.param(
            TASK,
            {"task_id": TASK, "status": "retrying", "percentage": "10"},
            "running",
            "retrying",
            10,
            id="unknown-status-word",
        ),
        pytest.param(
            TASK,
            {
                "task_id": TASK,
                "task_type": "imagine-video",
                "status": "finished",
                "video_urls": ["https://cdn.example.com/v/1.mp4"],
            },
            "succeeded",
            "finished",
            100,
            id="video",
        ),
        pytest.param(
            TASK,
            {
                "task_id": TASK,
                "task_type": "describe",
                "status": "finished",
                "content": ["a fox", "a red fox"],
            },
            "succeeded",
            "finished",
            100,
            id="describe",
        ),
        pytest.param(
            TASK,
            {"task_id": TASK, "task_type": "seed", "status": "finished", "seed": "123456"},
            "succeeded",
            "finished",
            100,
            id="seed",
        ),
        pytest.param(
            TASK,
            {**PROCESSING, "queue_position": 3, "eta": {"s": 10}},
            "running",
            "processing",
            45,
            id="unknown-extra-fields",
        ),
        pytest.param(
            TASK,
            {k: v for k, v in PROCESSING.items() if k != "task_id"},
            "running",
            "processing",
            45,
            id="no-task-id-in-answer",
        ),
        pytest.param(
            TASK,
            {**PROCESSING, "task_id": TASK.upper()},
            "running",
            "processing",
            45,
            id="task-id-upper-case",
        ),
    ],
)
def test_ok(
    task_id: str, payload: dict[str, Any], status: str, upstream_status: str, progress: int | None
) -> None:
    got = classify(200, {"content-type": "application/json"}, js(payload), task_id, NOW)
    assert got.kind == "ok"
    assert got.observation is not None
    assert got.observation.status == status
    assert got.observation.upstream_status == upstream_status
    assert got.observation.progress == progress
    assert got.raw == payload
    assert got.retry_after is None


def test_ok_carries_the_result() -> None:
    got = classify(200, {}, js(FINISHED_GRID), TASK, NOW)
    assert got.observation is not None
    assert got.observation.result.grid_image == FINISHED_GRID["original_image_url"]
    assert list(got.observation.result.images) == FINISHED_GRID["image_urls"]
    flux = classify(200, {}, js(FINISHED_FLUX), FLUX_TASK, NOW)
    assert flux.observation is not None
    assert flux.observation.result.images == (FINISHED_FLUX["image_url"],)
    failed = classify(200, {}, js(FAILED), TASK, NOW)
    assert failed.observation is not None
    assert failed.observation.error == "Content policy violation"


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "retry_after", "detail"),
    [
        pytest.param(401, {}, b"{}", "unauthorized", None, "http_401", id="401-empty-object"),
        pytest.param(401, {}, b"", "unauthorized", None, "http_401", id="401-no-body"),
        pytest.param(403, {}, b"Forbidden", "unauthorized", None, "http_403", id="403"),
        pytest.param(404, {}, b"", "not_found", None, "http_404", id="404-empty"),
        pytest.param(
            404, {}, js({"error": "not found"}), "not_found", None, "http_404", id="404-json"
        ),
        pytest.param(
            429,
            {"Retry-After": "30"},
            b"",
            "rate_limited",
            30.0,
            "http_429",
            id="429-retry-after-seconds",
        ),
        pytest.param(
            429,
            {"retry-after": "2.5"},
            b"",
            "rate_limited",
            2.5,
            "http_429",
            id="429-retry-after-fraction-lower-case",
        ),
        pytest.param(
            429,
            {"RETRY-AFTER": http_date(NOW + 120)},
            b"",
            "rate_limited",
            120.0,
            "http_429",
            id="429-retry-after-http-date",
        ),
        pytest.param(
            429,
            {"Retry-After": http_date(NOW - 120)},
            b"",
            "rate_limited",
            0.0,
            "http_429",
            id="429-retry-after-date-in-past",
        ),
        pytest.param(
            429,
            {"Retry-After": "soon"},
            b"",
            "rate_limited",
            None,
            "http_429",
            id="429-retry-after-garbage",
        ),
        pytest.param(
            429, {}, b"Too Many Requests", "rate_limited", None, "http_429", id="429-no-header"
        ),
        pytest.param(500, {}, b"", "error", None, "http_500", id="500-empty"),
        pytest.param(500, {}, js({"error": "boom"}), "error", None, "http_500", id="500-json-body"),
        pytest.param(
            500, {"Retry-After": "10"}, b"", "error", None, "http_500", id="500-retry-after-ignored"
        ),
        pytest.param(
            502, {}, b"<html><body>Bad Gateway</body></html>", "error", None, "http_502", id="502"
        ),
        pytest.param(503, {}, b"", "error", None, "http_503", id="503-no-header"),
        pytest.param(
            503, {"Retry-After": "10"}, b"", "error", 10.0, "http_503", id="503-retry-after"
        ),
        pytest.param(
            503,
            {"Retry-After": http_date(NOW + 60)},
            b"",
            "error",
            60.0,
            "http_503",
            id="503-retry-after-date",
        ),
        pytest.param(504, {}, b"upstream timed out", "error", None, "http_504", id="504"),
        pytest.param(
            400,
            {},
            js({"errors": [{"msg": "task_id must be a UUID"}]}),
            "error",
            None,
            "http_400",
            id="400-errors-shape",
        ),
        pytest.param(
            422, {}, js(PROCESSING), "error", None, "http_422", id="422-even-with-task-body"
        ),
        pytest.param(301, {"Location": "https://x"}, b"", "error", None, "http_301", id="301"),
    ],
)
def test_faults(
    status: int,
    headers: dict[str, str],
    body: bytes,
    kind: str,
    retry_after: float | None,
    detail: str,
) -> None:
    got = classify(status, headers, body, TASK, NOW)
    assert got.kind == kind
    assert got.observation is None
    assert got.detail == detail
    if retry_after is None:
        assert got.retry_after is None
    else:
        assert got.retry_after == pytest.approx(retry_after, abs=1.0)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   \n", id="blank"),
        pytest.param(b"<!DOCTYPE html><html><body>Maintenance</body></html>", id="html"),
        pytest.param(b"OK", id="plain-text"),
        pytest.param(b'{"task_id": "' + TASK.encode() + b'", "status": ', id="truncated-json"),
        pytest.param(b"\xff\xfe\xfa garbage", id="not-utf8"),
        pytest.param(b"[]", id="json-empty-list"),
        pytest.param(js([PROCESSING]), id="json-list-of-answer"),
        pytest.param(b"{}", id="json-empty-object"),
        pytest.param(b"null", id="json-null"),
        pytest.param(b"42", id="json-number"),
        pytest.param(b'"processing"', id="json-string"),
        pytest.param(js({"errors": [{"msg": "Invalid task_id"}]}), id="errors-shape-with-200"),
        pytest.param(js({"task_id": TASK}), id="no-status"),
        pytest.param(js({"task_id": TASK, "status": ""}), id="empty-status"),
        pytest.param(js({"task_id": TASK, "status": 3}), id="status-not-a-string"),
        pytest.param(
            js({**PROCESSING, "task_id": "11111111-2222-3333-4444-555555555555"}),
            id="answer-about-another-task",
        ),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested-list"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="deeply-nested-object"),
    ],
)
def test_200_without_a_usable_answer_is_an_error(body: bytes) -> None:
    got = classify(200, {"content-type": "application/json"}, body, TASK, NOW)
    assert isinstance(got, FetchResult)
    assert got.kind == "error"
    assert got.observation is None
    assert got.detail  # says which fault, for logs and metrics


@settings(max_examples=500, deadline=None, database=None)
@given(
    status=st.integers(min_value=100, max_value=599),
    retry_after=st.none() | st.text(max_size=40),
    body=st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["task_id", "status", "percentage", "error", "image_urls", "x"]),
                children,
                max_size=5,
            )
        ),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
)
def test_classify_never_raises(status: int, retry_after: str | None, body: bytes) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    got = classify(status, headers, body, TASK, NOW)
    assert got.kind in {"ok", "unauthorized", "not_found", "rate_limited", "error"}
    assert (got.kind == "ok") == (got.observation is not None)
    if got.retry_after is not None:
        assert 0.0 <= got.retry_after <= 3600.0


# --- parse_retry_after ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="missing"),
        pytest.param("", None, id="empty"),
        pytest.param("   ", None, id="blank"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("30", 30.0, id="seconds"),
        pytest.param(" 30 ", 30.0, id="seconds-padded"),
        pytest.param("1.5", 1.5, id="fraction"),
        pytest.param("-5", 0.0, id="negative-is-zero"),
        pytest.param("-1e9", 0.0, id="very-negative-is-zero"),
        pytest.param("3600", 3600.0, id="an-hour"),
        pytest.param("3601", 3600.0, id="above-an-hour-capped"),
        pytest.param("1e9", 3600.0, id="huge-capped"),
        pytest.param("1e400", 3600.0, id="overflow-capped"),
        pytest.param("inf", 3600.0, id="inf-capped"),
        pytest.param("-inf", 0.0, id="minus-inf-zero"),
        pytest.param("nan", None, id="nan"),
        pytest.param("NaN", None, id="NaN"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("30 seconds", None, id="words"),
        pytest.param(http_date(NOW + 90), 90.0, id="http-date-future"),
        pytest.param(http_date(NOW - 90), 0.0, id="http-date-past"),
        pytest.param(http_date(NOW + 86400 * 7), 3600.0, id="http-date-far-future-capped"),
        pytest.param("Fri, 31 Feb 2025 99:99:99 GMT", None, id="http-date-invalid"),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    got = parse_retry_after(value, NOW)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert math.isfinite(got)
        assert got == pytest.approx(expected, abs=1e-6)
