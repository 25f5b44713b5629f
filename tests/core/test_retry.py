"""What follows one webhook attempt (relay.core.retry.decide).

CONTRACT.md: a 2xx ends the delivery; 410 Gone ends it and the registration's webhooks;
anything else, a timeout or a refused connection (status None) is retried by
RELAY_DELIVERY_RETRY_SCHEDULE, then the delivery is marked failed.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.core.retry import RETRY_AFTER_CAP, decide

SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)  # the contract's default


@pytest.mark.parametrize(
    ("status", "attempts", "schedule", "ending", "delay"),
    [
        # 2xx: delivered, whatever the attempt
        pytest.param(200, 1, SCHEDULE, "delivered", None, id="200"),
        pytest.param(201, 1, SCHEDULE, "delivered", None, id="201"),
        pytest.param(202, 3, SCHEDULE, "delivered", None, id="202-third-attempt"),
        pytest.param(204, 8, SCHEDULE, "delivered", None, id="204-last-attempt"),
        pytest.param(299, 1, SCHEDULE, "delivered", None, id="299"),
        pytest.param(200, 1, (), "delivered", None, id="200-empty-schedule"),
        # 410: gone
        pytest.param(410, 1, SCHEDULE, "gone", None, id="410"),
        pytest.param(410, 8, SCHEDULE, "gone", None, id="410-schedule-spent"),
        pytest.param(410, 1, (), "gone", None, id="410-empty-schedule"),
        # anything else: retried by the schedule, attempt n waits schedule[n-1]
        pytest.param(500, 1, SCHEDULE, "retry", 5.0, id="500-after-first"),
        pytest.param(500, 2, SCHEDULE, "retry", 300.0, id="500-after-second"),
        pytest.param(500, 3, SCHEDULE, "retry", 1800.0, id="500-after-third"),
        pytest.param(502, 4, SCHEDULE, "retry", 7200.0, id="502-after-fourth"),
        pytest.param(503, 5, SCHEDULE, "retry", 18000.0, id="503-after-fifth"),
        pytest.param(504, 6, SCHEDULE, "retry", 36000.0, id="504-after-sixth"),
        pytest.param(500, 7, SCHEDULE, "retry", 36000.0, id="500-after-seventh"),
        pytest.param(400, 1, SCHEDULE, "retry", 5.0, id="400"),
        pytest.param(401, 1, SCHEDULE, "retry", 5.0, id="401"),
        pytest.param(404, 2, SCHEDULE, "retry", 300.0, id="404"),
        pytest.param(409, 1, SCHEDULE, "retry", 5.0, id="409"),
        pytest.param(413, 1, SCHEDULE, "retry", 5.0, id="413"),
        pytest.param(429, 1, SCHEDULE, "retry", 5.0, id="429-without-retry-after"),
        pytest.param(301, 1, SCHEDULE, "retry", 5.0, id="301-redirect-not-followed"),
        pytest.param(100, 1, SCHEDULE, "retry", 5.0, id="100"),
        pytest.param(None, 1, SCHEDULE, "retry", 5.0, id="timeout-or-refused"),
        pytest.param(None, 3, SCHEDULE, "retry", 1800.0, id="timeout-third"),
        # schedule spent
        pytest.param(500, 8, SCHEDULE, "failed", None, id="500-schedule-spent"),
        pytest.param(None, 8, SCHEDULE, "failed", None, id="timeout-schedule-spent"),
        pytest.param(429, 9, SCHEDULE, "failed", None, id="429-beyond-schedule"),
        pytest.param(500, 2, (1.5,), "failed", None, id="one-entry-spent"),
        pytest.param(500, 1, (1.5,), "retry", 1.5, id="one-entry-fraction"),
        # empty schedule: failed after the first attempt
        pytest.param(500, 1, (), "failed", None, id="empty-schedule-500"),
        pytest.param(None, 1, (), "failed", None, id="empty-schedule-timeout"),
        pytest.param(429, 1, (), "failed", None, id="empty-schedule-429"),
    ],
)
def test_decide(
    status: int | None,
    attempts: int,
    schedule: tuple[float, ...],
    ending: str,
    delay: float | None,
) -> None:
    decision = decide(status, attempts, schedule)
    assert decision.ending == ending
    if delay is None:
        assert decision.delay is None
    else:
        assert decision.delay == pytest.approx(delay)


@pytest.mark.parametrize(
    ("status", "attempts", "retry_after", "ending", "delay"),
    [
        pytest.param(429, 1, 120.0, "retry", 120.0, id="429-honoured"),
        pytest.param(503, 1, 120.0, "retry", 120.0, id="503-honoured"),
        pytest.param(429, 3, 60.0, "retry", 60.0, id="429-shorter-than-schedule"),
        pytest.param(503, 1, 0.0, "retry", 0.0, id="503-zero"),
        pytest.param(429, 1, 3600.0, "retry", 3600.0, id="429-at-cap"),
        pytest.param(429, 1, 3601.0, "retry", RETRY_AFTER_CAP, id="429-above-cap"),
        pytest.param(503, 1, 86400.0 * 30, "retry", 3600.0, id="503-month-capped"),
        pytest.param(429, 1, -10.0, "retry", 0.0, id="429-negative-is-zero"),
        pytest.param(500, 1, 120.0, "retry", 5.0, id="500-ignored"),
        pytest.param(502, 2, 120.0, "retry", 300.0, id="502-ignored"),
        pytest.param(400, 1, 120.0, "retry", 5.0, id="400-ignored"),
        pytest.param(None, 1, 120.0, "retry", 5.0, id="timeout-ignored"),
        pytest.param(200, 1, 120.0, "delivered", None, id="2xx-wins"),
        pytest.param(410, 1, 120.0, "gone", None, id="410-wins"),
        pytest.param(429, 8, 120.0, "failed", None, id="429-schedule-spent"),
        pytest.param(503, 8, 10.0, "failed", None, id="503-schedule-spent"),
    ],
)
def test_retry_after(
    status: int | None, attempts: int, retry_after: float, ending: str, delay: float | None
) -> None:
    decision = decide(status, attempts, SCHEDULE, retry_after=retry_after)
    assert decision.ending == ending
    if delay is None:
        assert decision.delay is None
    else:
        assert decision.delay == pytest.approx(delay)


@pytest.mark.parametrize(
    ("attempts", "jitter"),
    [
        pytest.param(attempts, jitter, id=f"attempt-{attempts}-jitter-{jitter}")
        for attempts in (1, 4, 7)
        for jitter in (0.0, 0.25, 0.5, 0.999999)
    ],
)
def test_jitter_bounds(attempts: int, jitter: float) -> None:
    base = SCHEDULE[attempts - 1]
    decision = decide(500, attempts, SCHEDULE, jitter=jitter)
    assert decision.ending == "retry"
    assert decision.delay is not None
    assert base <= decision.delay <= 1.1 * base
    assert decision.delay == pytest.approx(base * (1 + 0.1 * jitter))


@settings(max_examples=500, deadline=None, database=None)
@given(
    status=st.none() | st.integers(min_value=100, max_value=599),
    schedule=st.lists(st.floats(min_value=0.0, max_value=1e6), max_size=10).map(tuple),
    attempts=st.integers(min_value=1, max_value=12),
    jitter=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    retry_after=st.none() | st.floats(min_value=-1e9, max_value=1e9),
)
def test_decide_properties(
    status: int | None,
    schedule: tuple[float, ...],
    attempts: int,
    jitter: float,
    retry_after: float | None,
) -> None:
    decision = decide(status, attempts, schedule, retry_after=retry_after, jitter=jitter)
    if status is not None and 200 <= status < 300:
        assert decision.ending == "delivered"
    elif status == 410:
        assert decision.ending == "gone"
    elif attempts > len(schedule):
        assert decision.ending == "failed"
    else:
        assert decision.ending == "retry"
        assert decision.delay is not None
        if retry_after is not None and status in (429, 503):
            assert 0.0 <= decision.delay <= RETRY_AFTER_CAP
        else:
            base = schedule[attempts - 1]
            assert base <= decision.delay <= 1.1 * base
    if decision.ending != "retry":
        assert decision.delay is None
