"""When the client tries again, and how it reads an answer: table-wise, pure."""

from __future__ import annotations

import httpx
import pytest
from relay_client import calls
from relay_client.errors import NotFound, Unavailable, UnexpectedResponse
from relay_client.exchange import next_delay, settle, wait_slice
from relay_client.retry import NO_RETRY, RetryPolicy, retry_after_seconds

TASK_ID = "550e8400-e29b-41d4-a716-446655440000"


def policy(draw: float, attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=3.0, rand=lambda: draw)


@pytest.mark.parametrize(
    ("draw", "attempt", "retry_after", "expected"),
    [
        (1.0, 0, None, 0.5),
        (1.0, 1, None, 1.0),
        (1.0, 2, None, 2.0),
        (1.0, 3, None, 3.0),  # capped
        (1.0, 9, None, 3.0),
        (0.5, 1, None, 0.5),  # jitter draws below the ceiling
        (0.0, 2, None, 0.0),
        (0.0, 0, 1.0, 1.0),  # never sooner than Retry-After
        (1.0, 2, 1.0, 2.0),
        (0.0, 0, 60.0, 3.0),  # a Retry-After is capped too
    ],
)
def test_delay(draw: float, attempt: int, retry_after: float | None, expected: float) -> None:
    assert policy(draw).delay(attempt, retry_after) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("attempts", "attempt", "allowed"), [(4, 0, True), (4, 2, True), (4, 3, False), (1, 0, False)]
)
def test_allows(attempts: int, attempt: int, allowed: bool) -> None:
    assert policy(1.0, attempts).allows(attempt) is allowed


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("1", 1.0),
        (" 2.5 ", 2.5),
        ("-1", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


REGISTER = calls.register(TASK_ID)
GET = calls.get_task(TASK_ID)
DELETE = calls.delete_task(TASK_ID)
REDELIVER = calls.redeliver(TASK_ID)
REDELIVER_ONE = calls.redeliver_delivery("d1")
REDELIVER_FAILED = calls.redeliver_failed()


@pytest.mark.parametrize(
    ("call", "status", "retried"),
    [
        (GET, 503, True),
        (GET, None, True),  # the connection failed
        (DELETE, 503, True),
        (REGISTER, 503, True),  # idempotent by the contract
        (REGISTER, None, True),
        (calls.wait_task(TASK_ID, 5), 503, True),
        (calls.list_tasks(None, 10, None), None, True),
        (calls.failed_deliveries(10, None), 503, True),
        (REDELIVER, 503, False),  # each starts a new attempt series
        (REDELIVER, None, False),
        (REDELIVER_ONE, 503, False),
        (REDELIVER_FAILED, 503, False),
        (GET, 500, False),
        (GET, 502, False),
        (GET, 404, False),
        (GET, 429, False),
        (GET, 200, False),
    ],
)
def test_what_is_retried(call: calls.Call[object], status: int | None, retried: bool) -> None:
    response = None if status is None else httpx.Response(status)
    delay = next_delay(call, policy(1.0), 0, response)
    assert (delay is not None) is retried
    assert next_delay(call, NO_RETRY, 0, response) is None
    assert next_delay(call, policy(1.0), 3, response) is None, "the last attempt settles"


def test_a_503_waits_its_retry_after() -> None:
    response = httpx.Response(503, headers={"retry-after": "2"})
    assert next_delay(GET, policy(0.0), 0, response) == 2.0


def test_settle() -> None:
    assert settle(REDELIVER, httpx.Response(202, json={"delivery_id": "d9"}), False) == "d9"
    assert settle(DELETE, httpx.Response(204), False) is None
    with pytest.raises(NotFound):
        settle(DELETE, httpx.Response(404, json={"error": {"code": "not_found"}}), False)
    # A DELETE whose first answer was lost finds the task gone: it did its work.
    assert settle(DELETE, httpx.Response(404), True) is None
    with pytest.raises(NotFound):
        settle(GET, httpx.Response(404), True)
    with pytest.raises(Unavailable):
        settle(GET, httpx.Response(503), True)
    with pytest.raises(UnexpectedResponse):
        settle(GET, httpx.Response(200, content=b"<html>"), False)
    with pytest.raises(UnexpectedResponse):
        settle(GET, httpx.Response(200, json={"task_id": TASK_ID}), False)


def test_register_reads_created_from_the_status() -> None:
    body = {
        "task_id": TASK_ID,
        "status": "queued",
        "registered_at": "2026-11-29T10:00:00Z",
        "updated_at": "2026-11-29T10:00:00Z",
    }
    assert settle(REGISTER, httpx.Response(201, json=body), False).created
    assert not settle(REGISTER, httpx.Response(200, json=body), False).created


@pytest.mark.parametrize(
    ("events", "metadata", "hook", "url", "body"),
    [
        (None, None, False, None, {"task_id": TASK_ID, "upstream_webhook": False}),
        (
            ["task.progress"],
            {"a": 1},
            True,
            "https://h.example/x",
            {
                "task_id": TASK_ID,
                "upstream_webhook": True,
                "webhook_url": "https://h.example/x",
                "events": ["task.progress"],
                "metadata": {"a": 1},
            },
        ),
        ((), None, False, None, {"task_id": TASK_ID, "upstream_webhook": False, "events": []}),
    ],
)
def test_register_body(
    events: list[str] | None,
    metadata: dict[str, int] | None,
    hook: bool,
    url: str | None,
    body: dict[str, object],
) -> None:
    assert calls.register(TASK_ID, url, events, metadata, hook).body == body


@pytest.mark.parametrize(
    ("remaining", "seconds"), [(None, 60), (500.0, 60), (30.0, 30), (0.2, 1), (0.0, 0), (-3.0, 0)]
)
def test_wait_slice(remaining: float | None, seconds: int) -> None:
    assert wait_slice(remaining) == seconds


def test_ids_are_quoted_into_paths() -> None:
    assert calls.redeliver_delivery("a/b?c").path == "/v1/deliveries/a%2Fb%3Fc/redeliver"
