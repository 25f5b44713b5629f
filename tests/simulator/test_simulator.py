"""The upstream simulator: pure plans and answers table-wise, then the app through real uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from relay.simulator import Plan, answer, create_app, plan_for
from relay.simulator.plans import SHAPES, Shape, final_at
from support.payloads import new_id
from support.servers import Receiver

KEY = "sim-key-123"
KNOWN_WORDS = {"staged", "pending", "starting", "processing", "finished", "failed"}
BASE_FIELDS = {"task_id", "task_type", "model", "status"}
TID = "550e8400-e29b-41d4-a716-446655440000"

# ---------------------------------------------------------------------------
# answer(): one plan per shape with round numbers, so every phase is easy to hit.
# staged [0,2) pending [2,5) starting [5,10) processing [10,20) final from 20;
# retried: processing [10,15) failed [15,19) processing [19,29) final from 29.


def make_plan(shape: Shape, style: str = "plain", **changes: Any) -> Plan:
    plan = Plan(
        task_id=TID,
        task_type="imagine",
        model="midjourney",
        shape=shape,
        staged_seconds=2,
        queue_seconds=3,
        starting_seconds=5,
        duration_seconds=10,
        percentage_style=style,  # type: ignore[arg-type]
        retry_seconds=4,
        error="Content policy violation",
    )
    return replace(plan, **changes)


STATUS_TABLE: list[tuple[Shape, float, str]] = [
    *[
        (shape, t, word)
        for shape in ("grid", "single", "video", "describe", "shorten", "seed", "failed")
        for t, word in [
            (0, "staged"),
            (1.9, "staged"),
            (2, "pending"),
            (4.9, "pending"),
            (5, "starting"),
            (9.9, "starting"),
            (10, "processing"),
            (19.9, "processing"),
        ]
    ],
    *[(shape, 20, "finished") for shape in ("grid", "single", "video", "describe", "shorten")],
    ("seed", 20, "finished"),
    ("failed", 20, "failed"),
    ("failed", 10_000, "failed"),
    ("retried", 1, "staged"),
    ("retried", 12, "processing"),
    ("retried", 15, "failed"),
    ("retried", 18.9, "failed"),
    ("retried", 19, "processing"),
    ("retried", 28.9, "processing"),
    ("retried", 29, "finished"),
    ("unknown_word", 3, "pending"),
    ("unknown_word", 10, "retrying"),
    ("unknown_word", 19.9, "retrying"),
    ("unknown_word", 20, "finished"),
    ("sync", 0, "finished"),
    ("sync", 50, "finished"),
]


@pytest.mark.parametrize(("shape", "elapsed", "word"), STATUS_TABLE)
def test_status_word_in_each_phase(shape: Shape, elapsed: float, word: str) -> None:
    body = answer(make_plan(shape), elapsed)
    assert body["status"] == word
    assert body["task_id"] == TID
    assert body["task_type"] == "imagine"
    assert body["model"] == "midjourney"


def test_unknown_word_is_unknown() -> None:
    assert answer(make_plan("unknown_word"), 15)["status"] not in KNOWN_WORDS


@pytest.mark.parametrize(
    ("style", "elapsed", "expected"),
    [
        ("plain", 0, "0"),
        ("plain", 7, "0"),
        ("plain", 10, "0"),
        ("plain", 15, "50"),
        ("plain", 19.95, "99"),
        ("plain", 20, "100"),
        ("percent", 3, "0%"),
        ("percent", 15, "50%"),
        ("percent", 20, "100%"),
        ("empty", 15, ""),
        ("empty", 20, ""),
        ("missing", 15, None),
        ("missing", 20, None),
    ],
)
def test_percentage_per_style(style: str, elapsed: float, expected: str | None) -> None:
    body = answer(make_plan("grid", style), elapsed)
    assert body.get("percentage") == expected
    assert ("percentage" in body) is (expected is not None)


def test_percentage_rises_only_while_processing_and_stays_below_100() -> None:
    plan = make_plan("video", duration_seconds=60)
    before = {answer(plan, t / 10)["percentage"] for t in range(100)}
    assert before == {"0"}
    during = [int(answer(plan, 10 + t / 10)["percentage"]) for t in range(600)]
    assert during[0] == 0
    assert during == sorted(during)
    assert max(during) == 99
    assert answer(plan, 70)["percentage"] == "100"


def test_retried_restarts_its_percentage_after_the_failure() -> None:
    plan = make_plan("retried")
    assert answer(plan, 14.9)["percentage"] == "98"
    failed = answer(plan, 16)
    assert failed["error"] == "Content policy violation"
    assert "percentage" not in failed
    assert answer(plan, 19)["percentage"] == "0"


URL = re.compile(r"^https://\S+$")


def _urls(value: Any, count: int | None = None) -> bool:
    ok = isinstance(value, list) and all(isinstance(u, str) and URL.match(u) for u in value)
    return ok and (count is None or len(value) == count) and len(value) > 0


@pytest.mark.parametrize(
    ("shape", "result_keys"),
    [
        ("grid", {"original_image_url", "image_urls"}),
        ("retried", {"original_image_url", "image_urls"}),
        ("unknown_word", {"original_image_url", "image_urls"}),
        ("single", {"image_url"}),
        ("sync", {"image_url"}),
        ("video", {"video_urls"}),
        ("describe", {"content"}),
        ("shorten", {"content", "full_content"}),
        ("seed", {"seed"}),
    ],
)
def test_finished_answer_has_exactly_the_documented_fields(
    shape: Shape, result_keys: set[str]
) -> None:
    plan = make_plan(shape)
    body = answer(plan, final_at(plan))
    assert set(body) == BASE_FIELDS | {"percentage"} | result_keys
    assert body["status"] == "finished"
    assert body["percentage"] == "100"
    if "image_urls" in body:
        assert _urls(body["image_urls"], 4)
        assert URL.match(body["original_image_url"])
    if "image_url" in body:
        assert URL.match(body["image_url"])
    if "video_urls" in body:
        assert _urls(body["video_urls"])
    if "content" in body:
        assert body["content"]
        assert all(isinstance(line, str) and line for line in body["content"])
    if "full_content" in body:
        assert isinstance(body["full_content"], str)
        assert body["full_content"]
    if "seed" in body:
        assert isinstance(body["seed"], str)
        assert body["seed"].isdigit()
    # Two fetches of one finished task agree.
    assert answer(plan, final_at(plan) + 100) == body


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("elapsed", [0, 3, 7, 12, 17])
def test_unfinished_answers_carry_no_result(shape: Shape, elapsed: float) -> None:
    body = answer(make_plan(shape), elapsed)
    if body["status"] in ("finished", "failed"):
        return
    assert set(body) == BASE_FIELDS | {"percentage"}


def test_failed_answer_is_the_documented_one() -> None:
    body = answer(make_plan("failed", error="Content policy violation"), 25)
    assert body == {
        "task_id": TID,
        "task_type": "imagine",
        "model": "midjourney",
        "status": "failed",
        "error": "Content policy violation",
    }


def test_extra_fields_appear_only_when_planned() -> None:
    plain = answer(make_plan("grid"), 12)
    extra = answer(make_plan("grid", extra_fields=True), 12)
    assert set(extra) - set(plain) == {"created_at"}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", extra["created_at"])


def test_answer_is_json_serialisable_and_pure() -> None:
    plan = make_plan("shorten", extra_fields=True)
    first = [json.dumps(answer(plan, t)) for t in range(0, 30, 3)]
    assert first == [json.dumps(answer(plan, t)) for t in range(0, 30, 3)]


# ---------------------------------------------------------------------------
# plan_for()

# NOTES.md's typical durations, by task type.
RANGES = [
    (re.compile(r"^seed$"), 5, 15),
    (re.compile(r"^(describe|shorten)$"), 10, 30),
    (re.compile(r"^(upscale.*|faceswap)$"), 15, 45),
    (re.compile(r"^imagine-video.*$"), 60, 300),
    (re.compile(r"^(imagine|reroll|variation.*|blend)$"), 30, 90),
]
TASK_TYPES = {
    "imagine",
    "reroll",
    "variation-1",
    "variation-3",
    "variation-strong",
    "variation-subtle",
    "upscale#1",
    "upscale#4",
    "upscale-2x",
    "upscale-creative",
    "describe",
    "shorten",
    "faceswap",
    "seed",
    "imagine-video",
    "imagine-video-extend",
    "blend",
}


def test_plan_for_is_stable_and_ignores_spelling() -> None:
    assert plan_for(TID) == plan_for(TID)
    assert plan_for(TID.upper()) == plan_for(TID)
    assert plan_for(TID).task_id == TID


def test_plan_for_covers_every_shape_with_documented_durations() -> None:
    plans = [plan_for(new_id()) for _ in range(2000)]
    assert {p.shape for p in plans} == set(SHAPES)
    assert {p.percentage_style for p in plans} == {"plain", "percent", "empty", "missing"}
    assert any(p.extra_fields for p in plans)
    relaxed = 0
    for p in plans:
        assert p.task_type in TASK_TYPES
        assert p.model
        if p.shape == "sync":
            assert final_at(p) == 0
            continue
        low, high = next((lo, hi) for rx, lo, hi in RANGES if rx.match(p.task_type))
        assert low <= p.duration_seconds <= high, p
        assert 0 <= p.staged_seconds <= 2
        assert 0 < p.starting_seconds <= 5
        assert 0 <= p.queue_seconds <= 605
        assert (p.retry_seconds > 0) is (p.shape == "retried")
        relaxed += p.queue_seconds > 5
    # A minority waits in the relax queue.
    assert 0.05 * len(plans) < relaxed < 0.3 * len(plans)


def test_plan_for_honours_a_forced_shape() -> None:
    for shape in SHAPES:
        assert plan_for(TID, shape).shape == shape
    assert plan_for(TID, "sync").duration_seconds == 0
    video = plan_for(TID, "video")
    assert video.task_type.startswith("imagine-video")
    assert 60 <= video.duration_seconds <= 300


# ---------------------------------------------------------------------------
# The app, through a real uvicorn server on a free loopback port.


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before starting")
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def simulator(**options: Any) -> AsyncIterator[httpx.AsyncClient]:
    options.setdefault("api_key", KEY)
    async with (
        serving(create_app(**options)) as base,
        httpx.AsyncClient(base_url=base, headers={"Authorization": KEY}, timeout=5) as client,
    ):
        yield client


@pytest.fixture(scope="module")
async def shared_simulator() -> AsyncIterator[httpx.AsyncClient]:
    async with simulator() as client:
        yield client


@pytest.fixture
async def sim(shared_simulator: httpx.AsyncClient) -> httpx.AsyncClient:
    """A simulator shared by the table-driven tests (starting one per case costs ~0.2 s), reset."""
    assert (await shared_simulator.post("/sim/reset")).status_code == 204
    return shared_simulator


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def fetch(client: httpx.AsyncClient, task_id: str = TID) -> httpx.Response:
    return await client.post("/api/v1/fetch", json={"task_id": task_id})


async def add_task(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/sim/tasks", json=fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def add_fault(client: httpx.AsyncClient, **fields: Any) -> None:
    response = await client.post("/sim/faults", json=fields)
    assert response.status_code == 201, response.text


async def test_key_is_required_and_checked() -> None:
    async with simulator() as client:
        for headers in ({"Authorization": ""}, {"Authorization": "wrong"}):
            response = await client.post("/api/v1/fetch", json={"task_id": TID}, headers=headers)
            assert (response.status_code, response.json()) == (401, {})
        # The key goes as it is: a Bearer prefix makes it another key.
        bearer = await client.post(
            "/api/v1/fetch", json={"task_id": TID}, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert bearer.status_code == 401
        assert (await fetch(client)).status_code == 200
    async with simulator(api_key=None) as client:
        assert (await fetch(client)).status_code == 200
        anon = httpx.AsyncClient(base_url=str(client.base_url))
        async with anon:
            response = await anon.post("/api/v1/fetch", json={"task_id": TID})
        assert (response.status_code, response.json()) == (401, {})


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1, 2]", b"{}", b'{"task_id": 5}', b'{"task_id": "nope"}', b""],
)
async def test_bad_bodies_get_400_errors(content: bytes, sim: httpx.AsyncClient) -> None:
    response = await sim.post("/api/v1/fetch", content=content)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert isinstance(errors, list)
    assert isinstance(errors[0]["msg"], str)
    assert errors[0]["msg"]


async def test_strict_refuses_tasks_it_did_not_make() -> None:
    async with simulator(strict=True) as client:
        assert (await fetch(client)).status_code == 404
        await add_task(client, task_id=TID, shape="sync")
        response = await fetch(client)
        assert response.status_code == 200
        assert response.json()["status"] == "finished"


async def test_unknown_task_clock_starts_at_first_fetch_and_speed_scales_it() -> None:
    clock = FakeClock()
    task_id = new_id()
    plan = plan_for(task_id)
    async with simulator(clock=clock, speed=10) as client:
        clock.now += 500  # time before the first fetch does not count
        assert (await fetch(client, task_id)).json() == answer(plan, 0)
        clock.now += 3.5
        assert (await fetch(client, task_id)).json() == answer(plan, 35)
        clock.now += 1000
        final = (await fetch(client, task_id)).json()
        assert final == answer(plan, final_at(plan))
        assert final["status"] in ("finished", "failed")


async def test_created_task_follows_its_plan() -> None:
    clock = FakeClock()
    async with simulator(clock=clock) as client:
        created = await add_task(
            client,
            task_id=TID,
            shape="shorten",
            task_type="shorten",
            staged_seconds=1,
            queue_seconds=1,
            starting_seconds=1,
            duration_seconds=10,
            percentage_style="percent",
        )
        assert created["task_id"] == TID
        assert created["plan"]["shape"] == "shorten"
        seen = []
        for _ in range(15):
            body = (await fetch(client)).json()
            seen.append((body["status"], body.get("percentage")))
            clock.now += 1
        assert seen[:4] == [
            ("staged", "0%"),
            ("pending", "0%"),
            ("starting", "0%"),
            ("processing", "0%"),
        ]
        assert seen[8] == ("processing", "50%")
        assert seen[13:] == [("finished", "100%")] * 2
        assert body["full_content"]


async def test_created_task_defaults_come_from_plan_for(sim: httpx.AsyncClient) -> None:
    created = await add_task(sim, task_id=TID)
    assert created["plan"] == asdict(plan_for(TID))
    generated = await add_task(sim)
    assert str(uuid.UUID(generated["task_id"])) == generated["task_id"]
    assert generated["plan"] == asdict(plan_for(generated["task_id"]))


@pytest.mark.parametrize(
    "fields",
    [
        {"task_id": "x"},
        {"shape": "square"},
        {"duration_seconds": -1},
        {"queue_seconds": "10"},
        {"percentage_style": "fraction"},
        {"webhook_url": "ftp://example.com"},
        {"colour": "blue"},
    ],
)
async def test_created_task_validation(fields: dict[str, Any], sim: httpx.AsyncClient) -> None:
    response = await sim.post("/sim/tasks", json=fields)
    assert response.status_code == 400
    assert response.json()["errors"][0]["msg"]


async def test_speed_makes_a_task_finish_fast() -> None:
    async with simulator(speed=200) as client:
        await add_task(client, task_id=TID, shape="grid", queue_seconds=4, duration_seconds=60)
        started = time.monotonic()
        words = []
        while True:
            body = (await fetch(client)).json()
            words.append(body["status"])
            if body["status"] == "finished":
                break
            assert time.monotonic() - started < 3
            await asyncio.sleep(0.02)
        assert "processing" in words
        assert len(body["image_urls"]) == 4


async def test_stats_count_fetches(sim: httpx.AsyncClient) -> None:
    other = new_id()
    for task_id in (TID, TID, other):
        await fetch(sim, task_id)
    await sim.post("/api/v1/fetch", content=b"garbage")
    await add_fault(sim, kind="non_json", count=-1)
    stats = (await sim.get("/sim/stats")).json()
    assert stats == {"fetches": 4, "by_task": {TID: 2, other: 1}, "faults_pending": 1}
    assert (await sim.post("/sim/reset")).status_code == 204
    stats = (await sim.get("/sim/stats")).json()
    assert stats == {"fetches": 0, "by_task": {}, "faults_pending": 0}


async def test_reset_forgets_tasks() -> None:
    async with simulator(strict=True) as client:
        await add_task(client, task_id=TID)
        assert (await fetch(client)).status_code == 200
        await client.post("/sim/reset")
        assert (await fetch(client)).status_code == 404


@pytest.mark.parametrize(
    ("fault", "status", "retry_after", "body_check"),
    [
        ({"status": 401}, 401, None, lambda r: r.json() == {}),
        ({"status": 404}, 404, None, lambda r: r.json()["errors"][0]["msg"]),
        ({"status": 429, "retry_after": 7}, 429, "7", lambda r: "errors" in r.json()),
        ({"status": 429, "body": "empty"}, 429, None, lambda r: r.content == b""),
        ({"status": 500}, 500, None, lambda r: r.text.startswith("<html>")),
        ({"status": 502, "body": "empty"}, 502, None, lambda r: r.content == b""),
        ({"status": 503, "retry_after": 2.5, "body": "json"}, 503, "2.5", lambda r: r.json()),
        (
            {"status": 503, "retry_after": "Wed, 21 Oct 2026 07:28:00 GMT"},
            503,
            "Wed, 21 Oct 2026 07:28:00 GMT",
            lambda r: "html" in r.headers["content-type"],
        ),
    ],
)
async def test_status_faults(
    fault: dict[str, Any],
    status: int,
    retry_after: str | None,
    body_check: Any,
    sim: httpx.AsyncClient,
) -> None:
    await add_fault(sim, kind="status", **fault)
    response = await fetch(sim)
    assert response.status_code == status
    assert response.headers.get("retry-after") == retry_after
    assert body_check(response)
    assert (await fetch(sim)).status_code == 200


async def test_answer_replacing_faults(sim: httpx.AsyncClient) -> None:
    await add_fault(sim, kind="non_json")
    await add_fault(sim, kind="wrong_shape")
    await add_fault(sim, kind="wrong_shape", variant="no_status")
    await add_fault(sim, kind="errors_400", msg="task_id: bad")

    non_json = await fetch(sim)
    assert non_json.status_code == 200
    assert non_json.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        json.loads(non_json.content)

    listed = await fetch(sim)
    assert (listed.status_code, type(listed.json())) == (200, list)

    no_status = await fetch(sim)
    assert no_status.status_code == 200
    assert isinstance(no_status.json(), dict)
    assert "status" not in no_status.json()

    errors = await fetch(sim)
    assert (errors.status_code, errors.json()) == (400, {"errors": [{"msg": "task_id: bad"}]})

    assert (await fetch(sim)).json()["status"]


async def test_slow_fault_delays_a_normal_answer(sim: httpx.AsyncClient) -> None:
    await add_fault(sim, kind="slow", seconds=0.3)
    started = time.monotonic()
    response = await fetch(sim)
    assert time.monotonic() - started >= 0.3
    assert response.json() == answer(plan_for(TID), 0)


async def test_disconnect_fault_drops_the_connection(sim: httpx.AsyncClient) -> None:
    await add_fault(sim, kind="disconnect")
    with pytest.raises(httpx.TransportError):
        await fetch(sim)
    # The server lives on and the next call is answered.
    assert (await fetch(sim)).status_code == 200


async def test_fault_counts_order_and_targets(sim: httpx.AsyncClient) -> None:
    other = new_id()
    await add_fault(sim, kind="status", status=500, count=2)
    await add_fault(sim, kind="status", status=429, task_id=TID)
    codes = [(await fetch(sim)).status_code for _ in range(4)]
    assert codes == [500, 500, 429, 200]

    await add_fault(sim, kind="status", status=503, task_id=TID, count=-1)
    assert (await fetch(sim, other)).status_code == 200
    assert [(await fetch(sim)).status_code for _ in range(5)] == [503] * 5
    assert (await sim.get("/sim/stats")).json()["faults_pending"] == 1
    assert len((await sim.get("/sim/faults")).json()["faults"]) == 1
    assert (await sim.delete("/sim/faults")).status_code == 204
    assert (await fetch(sim)).status_code == 200
    assert (await sim.get("/sim/stats")).json()["faults_pending"] == 0


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "lightning"},
        {"kind": "status", "status": 418},
        {"kind": "status"},
        {"kind": "status", "status": 500, "body": "xml"},
        {"kind": "status", "status": 429, "retry_after": -1},
        {"kind": "slow", "seconds": "long"},
        {"kind": "non_json", "count": 0},
        {"kind": "non_json", "task_id": "not-a-uuid"},
    ],
)
async def test_fault_validation(fault: dict[str, Any], sim: httpx.AsyncClient) -> None:
    response = await sim.post("/sim/faults", json=fault)
    assert response.status_code == 400
    assert response.json()["errors"][0]["msg"]
    assert (await sim.get("/sim/stats")).json()["faults_pending"] == 0


# ---------------------------------------------------------------------------
# The upstream's own webhooks.


async def wait_for(condition: Any, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_webhook_arrives_once_with_secret_after_retry() -> None:
    async with Receiver() as receiver, simulator(speed=100) as client:
        receiver.answers = [500]
        created = await add_task(
            client,
            task_id=TID,
            shape="retried",
            staged_seconds=0,
            queue_seconds=1,
            starting_seconds=1,
            duration_seconds=10,
            retry_seconds=5,
            webhook_url=f"{receiver.url}/hook",
            webhook_secret="s3cret",
        )
        started = time.monotonic()
        await wait_for(lambda: len(receiver.received) == 2)
        first_at, first = receiver.arrivals[0], receiver.received[0]
        headers, body = {k.lower(): v for k, v in first.headers.items()}, first.json
        # Final at 22 s of task time, i.e. 0.22 s at speed 100: the interim `failed` sent nothing.
        assert first_at - started >= 0.2
        assert headers["x-webhook-secret"] == "s3cret"
        assert headers["content-type"] == "application/json"
        plan = Plan(**created["plan"])
        assert body == answer(plan, final_at(plan))
        assert body["status"] == "finished"
        # The retry comes about 10 s of task time (0.1 s here) after the failed attempt.
        assert receiver.arrivals[1] - first_at >= 0.09
        assert receiver.received[1].json == body
        assert (await fetch(client)).json() == body
        await asyncio.sleep(0.3)
        assert len(receiver.received) == 2


async def test_webhook_for_a_failed_task_and_giving_up() -> None:
    async with Receiver() as receiver, simulator(speed=1000) as client:
        receiver.answers = [500] * 100
        await add_task(
            client,
            shape="failed",
            queue_seconds=0,
            duration_seconds=20,
            webhook_url=f"{receiver.url}/hook",
            webhook_secret="abc",
        )
        # One attempt and three retries (10, 30, 90 s of task time), then nothing more.
        await wait_for(lambda: len(receiver.received) == 4)
        await asyncio.sleep(0.3)
        assert len(receiver.received) == 4
        assert {r.json["status"] for r in receiver.received} == {"failed"}
        assert all(r.json["error"] for r in receiver.received)


async def test_webhook_to_nowhere_does_not_break_the_app() -> None:
    async with simulator(speed=1000) as client:
        await add_task(client, shape="sync", webhook_url="http://127.0.0.1:9/hook")
        await add_task(client, shape="sync", webhook_url="http://nonexistent.invalid/hook")
        await asyncio.sleep(0.3)
        assert (await fetch(client)).status_code == 200


def test_create_app_refuses_a_useless_speed() -> None:
    for speed in (0, -1, float("inf")):
        with pytest.raises(ValueError):
            create_app(speed=speed)
