"""`GET /v1/tasks` (the tenant's tasks, newest first, paged by `next_cursor`) and the
long-poll `GET /v1/tasks/{id}/wait`, through the real app served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
import types
from datetime import datetime
from typing import Any

import httpx
import pytest

from relay.api.routes import tasks as routes
from support.payloads import finished, new_id, processing
from support.servers import Canned, ScriptedUpstream
from tests.conftest import Api


async def list_page(
    api: Api, key: str = "key-alpha-0123456789", **query: Any
) -> tuple[list[dict[str, Any]], str | None]:
    response = await api.client.get(
        "/v1/tasks", params=query, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"tasks", "next_cursor"}
    return body["tasks"], body["next_cursor"]


async def list_all(
    api: Api, key: str = "key-alpha-0123456789", limit: int = 7, **query: Any
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every task by following next_cursor; and the size of each page."""
    tasks: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(1000):
        params = {"limit": limit, **query}
        if cursor is not None:
            params["cursor"] = cursor
        page, cursor = await list_page(api, key, **params)
        assert len(page) <= limit
        tasks.extend(page)
        sizes.append(len(page))
        if cursor is None:
            return tasks, sizes
    raise AssertionError("the cursor never ran out")


def assert_error(response: httpx.Response, status: int, field: str | None) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert error.get("field") == field, error


def ids(tasks: list[dict[str, Any]]) -> list[str]:
    return [t["task_id"] for t in tasks]


def millis(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def assert_newest_first(tasks: list[dict[str, Any]], slack_ms: int = 0) -> None:
    """Registration times never increase down the listing (within `slack_ms`)."""
    stamps = [millis(t["registered_at"]) for t in tasks]
    for before, after in itertools.pairwise(stamps):
        assert after <= before + slack_ms, [t["registered_at"] for t in tasks]


def freeze_api_clock(monkeypatch: pytest.MonkeyPatch, now: float) -> None:
    """The API's wall clock (registration times) stands still at `now`."""
    monkeypatch.setattr(
        routes, "time", types.SimpleNamespace(time=lambda: now, monotonic=time.monotonic)
    )


# --- whose tasks, in which order ------------------------------------------------------


async def test_listing_shows_only_the_tenants_tasks_newest_first(api: Api) -> None:
    alpha = []
    for _ in range(4):
        alpha.append(new_id())
        assert (await api.register(alpha[-1])).status_code == 201
        await asyncio.sleep(0.005)  # distinct registration times
    beta = [new_id(), new_id()]
    for task_id in beta:
        assert (await api.register(task_id, key="key-beta-0123456789")).status_code == 201
    shared = new_id()  # both tenants registered it: each sees it once, as its own
    assert (await api.register(shared, metadata={"who": "alpha"})).status_code == 201
    assert (
        await api.register(shared, key="key-beta-0123456789", metadata={"who": "beta"})
    ).status_code == 201

    tasks, next_cursor = await list_page(api)
    assert next_cursor is None
    assert ids(tasks) == [shared, *reversed(alpha)]
    assert tasks[0]["metadata"] == {"who": "alpha"}
    assert_newest_first(tasks)
    # key-alpha-0123456789-2 names the same tenant: the same listing.
    assert ids((await list_page(api, "key-alpha-0123456789-2"))[0]) == ids(tasks)

    beta_tasks, _ = await list_page(api, "key-beta-0123456789")
    assert ids(beta_tasks) == [shared, *reversed(beta)]
    assert beta_tasks[0]["metadata"] == {"who": "beta"}
    # Every item is the full task resource.
    assert tasks[1] == (await api.task(alpha[-1])).json()


async def test_listing_needs_a_key(api: Api) -> None:
    response = await api.client.get("/v1/tasks", headers={"authorization": ""})
    assert_error(response, 401, None)
    response = await api.client.get("/v1/tasks", headers={"authorization": "Bearer nope"})
    assert_error(response, 401, None)


async def test_empty_listing(api: Api) -> None:
    assert await list_page(api) == ([], None)


# --- pagination --------------------------------------------------------------------------


async def test_pages_of_seven_visit_every_task_once_even_registered_at_once(api: Api) -> None:
    sequential = []
    for _ in range(5):
        sequential.append(new_id())
        assert (await api.register(sequential[-1])).status_code == 201
    burst = [new_id() for _ in range(25)]
    answers = await asyncio.gather(*(api.register(t) for t in burst))
    assert [a.status_code for a in answers] == [201] * 25
    everyone = set(sequential) | set(burst)

    tasks, sizes = await list_all(api, limit=7)
    assert len(ids(tasks)) == len(set(ids(tasks))), "a task was listed twice"
    assert set(ids(tasks)) == everyone
    assert sizes == [7, 7, 7, 7, 2]
    # Exact order inside one millisecond: see test_newest_first_within_one_millisecond.
    assert_newest_first(tasks, slack_ms=1)
    assert ids(tasks)[-5:] == list(reversed(sequential))


async def test_pagination_with_every_task_in_the_same_millisecond(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equal scores throughout: more tasks in one millisecond than one read of the set
    holds (the listing reads `limit + 64` members at a time)."""
    freeze_api_clock(monkeypatch, round(time.time(), 3))
    burst = [new_id() for _ in range(100)]
    for start in range(0, len(burst), 25):
        answers = await asyncio.gather(*(api.register(t) for t in burst[start : start + 25]))
        assert [a.status_code for a in answers] == [201] * 25
    monkeypatch.undo()

    tasks, sizes = await list_all(api, limit=7)
    assert len({t["registered_at"] for t in tasks}) == 1
    assert len(ids(tasks)) == len(set(ids(tasks))), "a task was listed twice"
    assert set(ids(tasks)) == set(burst), f"{len(set(burst) - set(ids(tasks)))} never listed"
    assert sizes == [7] * 14 + [2]


async def test_newest_first_within_one_millisecond(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tasks 0.6 ms apart that share a millisecond once rounded: whatever their ids,
    the listing never shows an older `registered_at` above a newer one."""
    millis = int(time.time() * 1000)
    older, newer = "ffffffff-ffff-4fff-bfff-ffffffffffff", "00000000-0000-4000-8000-000000000000"
    freeze_api_clock(monkeypatch, (millis + 0.6) / 1000)
    assert (await api.register(older)).status_code == 201
    freeze_api_clock(monkeypatch, (millis + 1.2) / 1000)
    assert (await api.register(newer)).status_code == 201
    monkeypatch.undo()

    tasks, _ = await list_page(api)
    assert sorted(ids(tasks)) == sorted([older, newer])
    assert_newest_first(tasks)


async def test_a_page_of_exactly_the_rest_ends_the_listing(api: Api) -> None:
    registered = [new_id() for _ in range(6)]
    for task_id in registered:
        await api.register(task_id)
    tasks, sizes = await list_all(api, limit=3)
    assert set(ids(tasks)) == set(registered)
    assert sizes in ([3, 3], [3, 3, 0]), sizes
    whole, cursor = await list_page(api, limit=200)
    assert cursor is None and len(whole) == 6


async def test_default_page_is_fifty(api: Api) -> None:
    answers = await asyncio.gather(*(api.register(new_id()) for _ in range(55)))
    assert all(a.status_code == 201 for a in answers)
    tasks, cursor = await list_page(api)
    assert len(tasks) == 50 and cursor is not None
    rest, cursor = await list_page(api, cursor=cursor)
    assert len(rest) == 5 and cursor is None
    assert not set(ids(tasks)) & set(ids(rest))


async def test_deleted_tasks_vanish_from_the_listing(api: Api) -> None:
    registered = [new_id() for _ in range(10)]
    for task_id in registered:
        await api.register(task_id)
    for task_id in registered[::3]:
        assert (await api.client.delete(f"/v1/tasks/{task_id}")).status_code == 204
    kept = [t for t in registered if t not in registered[::3]]
    tasks, _ = await list_all(api, limit=2)
    assert ids(tasks) == list(reversed(kept))


async def test_a_cursor_stays_valid_when_its_task_is_deleted(api: Api) -> None:
    registered = []
    for _ in range(6):
        registered.append(new_id())
        await api.register(registered[-1])
        await asyncio.sleep(0.002)
    page, cursor = await list_page(api, limit=3)
    assert ids(page) == list(reversed(registered))[:3]
    assert (await api.client.delete(f"/v1/tasks/{page[-1]['task_id']}")).status_code == 204
    rest, cursor = await list_page(api, limit=3, cursor=cursor)
    assert ids(rest) == list(reversed(registered))[3:]


# --- the status filter ---------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
async def test_status_filter_pages_through_only_that_status(
    api: Api, upstream: ScriptedUpstream
) -> None:
    done = [new_id() for _ in range(5)]
    running = [new_id() for _ in range(6)]
    for task_id in done:
        upstream.script(task_id, finished(task_id))
    for task_id in running:
        upstream.script(task_id, processing(task_id))
    for task_id in [*done, *running]:
        assert (await api.register(task_id, events=[])).status_code == 201
    for task_id in done:
        await api.wait_status(task_id, "succeeded")
    for task_id in running:
        await api.wait_status(task_id, "running")

    succeeded, _ = await list_all(api, limit=2, status="succeeded")
    assert sorted(ids(succeeded)) == sorted(done)
    assert all(t["status"] == "succeeded" for t in succeeded)
    still, _ = await list_all(api, limit=4, status="running")
    assert sorted(ids(still)) == sorted(running)
    assert all(t["status"] == "running" for t in still)
    for status in ("queued", "failed", "timed_out"):
        assert (await list_all(api, limit=3, status=status))[0] == []
    # Other tenants' tasks never show, whatever the filter.
    assert (await list_all(api, "key-beta-0123456789", limit=3, status="succeeded"))[0] == []
    everything, _ = await list_all(api, limit=5)
    assert sorted(ids(everything)) == sorted(done + running)


# --- bad queries ------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "7.5", "", "1e3"])
async def test_a_bad_limit_is_400_naming_limit(api: Api, limit: str) -> None:
    response = await api.client.get("/v1/tasks", params={"limit": limit})
    assert_error(response, 400, "limit")


@pytest.mark.parametrize("status", ["done", "SUCCEEDED", "pending", ""])
async def test_a_bad_status_is_400_naming_status(api: Api, status: str) -> None:
    response = await api.client.get("/v1/tasks", params={"status": status})
    assert_error(response, 400, "status")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        b64(b"garbage"),
        b64(b"[]"),
        b64(b"[1]"),
        b64(b'{"a": 1}'),
        b64(b'[1, "x", 3]'),
        b64(b'["nan", "x"]'),
        b64(b'["one", "x"]'),
        b64(b"[null, null]"),
        b64(b"\xff\xfe"),
    ],
)
async def test_a_bad_cursor_is_400_naming_cursor(api: Api, cursor: str) -> None:
    await api.register(new_id())
    response = await api.client.get("/v1/tasks", params={"cursor": cursor, "limit": 5})
    assert_error(response, 400, "cursor")


# --- the long-poll --------------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
async def test_wait_answers_as_soon_as_the_task_is_final(
    api: Api, upstream: ScriptedUpstream
) -> None:
    task_id = new_id()
    # The first fetch comes at once and takes half a second to answer `finished`.
    upstream.script(task_id, Canned(finished(task_id), delay=0.5))
    assert (await api.register(task_id, events=[])).status_code == 201
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await api.client.get(f"/v1/tasks/{task_id}/wait", params={"timeout": 5})
    elapsed = loop.time() - started
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded" and body["progress"] == 100
    assert body == (await api.task(task_id)).json()
    assert 0.4 <= elapsed < 1.5, f"answered after {elapsed:.2f} s"

    # A task already final answers at once.
    started = loop.time()
    again = await api.client.get(f"/v1/tasks/{task_id}/wait", params={"timeout": 5})
    assert again.status_code == 200 and again.json()["status"] == "succeeded"
    assert loop.time() - started < 0.3


@pytest.mark.usefixtures("worker")
async def test_wait_answers_the_task_as_it_is_after_the_timeout(
    api: Api, upstream: ScriptedUpstream
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    assert (await api.register(task_id, events=[])).status_code == 201
    await api.wait_status(task_id, "running")
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await api.client.get(f"/v1/tasks/{task_id}/wait", params={"timeout": 1})
    elapsed = loop.time() - started
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "running"
    assert response.json()["task_id"] == task_id
    assert 0.9 <= elapsed < 2.0, f"answered after {elapsed:.2f} s"

    started = loop.time()
    response = await api.client.get(f"/v1/tasks/{task_id}/wait", params={"timeout": 0})
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert loop.time() - started < 0.3


async def test_wait_is_404_for_other_tenants_and_unknown_tasks(api: Api) -> None:
    task_id = new_id()
    await api.register(task_id)
    loop = asyncio.get_running_loop()
    for path, key in [
        (f"/v1/tasks/{task_id}/wait", "key-beta-0123456789"),
        (f"/v1/tasks/{new_id()}/wait", "key-alpha-0123456789"),
        ("/v1/tasks/not-a-uuid/wait", "key-alpha-0123456789"),
    ]:
        started = loop.time()
        response = await api.client.get(
            path, params={"timeout": 5}, headers={"authorization": f"Bearer {key}"}
        )
        assert_error(response, 404, None)
        assert loop.time() - started < 0.5, "a 404 does not wait"
    response = await api.client.get(f"/v1/tasks/{task_id}/wait", headers={"authorization": ""})
    assert_error(response, 401, None)


@pytest.mark.parametrize("timeout", ["61", "-1", "x", "1.5"])
async def test_wait_with_a_bad_timeout_is_400_naming_timeout(api: Api, timeout: str) -> None:
    task_id = new_id()
    await api.register(task_id)
    response = await api.client.get(f"/v1/tasks/{task_id}/wait", params={"timeout": timeout})
    assert_error(response, 400, "timeout")


async def test_wait_answers_404_once_the_task_is_deleted_meanwhile(api: Api) -> None:
    task_id = new_id()
    await api.register(task_id)
    waiting = asyncio.create_task(
        api.client.get(f"/v1/tasks/{task_id}/wait", params={"timeout": 5})
    )
    await asyncio.sleep(0.3)
    assert (await api.client.delete(f"/v1/tasks/{task_id}")).status_code == 204
    response = await asyncio.wait_for(waiting, 2)
    assert_error(response, 404, None)


async def test_a_task_deleted_and_registered_again_is_listed_once_as_the_newest(
    api: Api,
) -> None:
    first, again, last = new_id(), new_id(), new_id()
    for task_id in (first, again, last):
        await api.register(task_id)
        await asyncio.sleep(0.002)
    assert (await api.client.delete(f"/v1/tasks/{again}")).status_code == 204
    await api.register(again)
    tasks, _ = await list_all(api, limit=2)
    assert ids(tasks) == [again, last, first]


async def test_a_cursor_naming_no_task_id_is_400(api: Api) -> None:
    await api.register(new_id())
    cursor = b64(b'[1764680000000, "not-a-task-id"]')
    response = await api.client.get("/v1/tasks", params={"cursor": cursor, "limit": 5})
    assert_error(response, 400, "cursor")
