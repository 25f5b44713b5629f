"""The operator's status page (`GET /status`), driven in a real headless browser.

Debian's chromium (`/usr/bin/chromium`, `make browser` installs it) runs under Playwright's
async API in the session's event loop, next to the real API (uvicorn) and the worker's loops.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import pytest

from support.payloads import answer, finished, new_id
from support.servers import Receiver, ScriptedUpstream
from tests.conftest import Api

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Page, Request, Route

import playwright.async_api as pw

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = "/tmp/status-page.png"
KEY_ALPHA = "key-alpha-0123456789"

pw.expect.set_options(timeout=10_000)
expect = pw.expect


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (`make browser` does)")
    async with pw.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


class Tab:
    """One browser tab on the status page, recording every request and every script problem."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.requests: list[str] = []
        self.problems: list[str] = []
        page.on("request", self._request)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        # A 401 or 503 answer is logged by chromium as "Failed to load resource": expected.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(message.text)  # a CSP violation, a script error...

    def by(self, testid: str) -> Any:
        return self.page.get_by_test_id(testid)

    def task_row(self, task_id: str) -> Any:
        return self.page.locator(f'[data-testid="task-row"][data-task-id="{task_id}"]')

    def panel(self, task_id: str) -> Any:
        return self.page.locator(f'[data-testid="deliveries-panel"][data-task-id="{task_id}"]')

    async def open(self) -> None:
        await self.page.goto(f"{self.base}/status")

    async def sign_in(self, key: str) -> None:
        await self.open()
        await self.by("key-input").fill(key)
        await self.by("key-submit").click()

    async def row_statuses(self) -> list[str]:
        statuses: list[str] = await self.by("task-row").evaluate_all(
            "rows => rows.map(r => r.dataset.status)"
        )
        return statuses

    async def row_ids(self) -> list[str]:
        ids: list[str] = await self.by("task-row").evaluate_all(
            "rows => rows.map(r => r.dataset.taskId)"
        )
        return ids

    async def refreshed(self) -> None:
        """Click Refresh and wait until that refresh has been rendered."""
        count = int(await self.by("last-refreshed").get_attribute("data-count") or 0)
        await self.by("refresh").click()
        await expect(self.by("last-refreshed")).not_to_have_attribute("data-count", str(count))

    def assert_clean(self) -> None:
        """Only the API's own origin was asked for anything, and no script complained."""
        strays = [url for url in self.requests if not url.startswith(self.base + "/")]
        assert strays == [], f"requests to other hosts: {strays}"
        assert all("key-" not in url for url in self.requests), "a key went into a URL"
        assert self.problems == []


@pytest.fixture
async def tab(browser: Browser, api: Api) -> AsyncIterator[Tab]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        yield Tab(page, f"http://127.0.0.1:{api.port}")
    finally:
        await context.close()


async def wait_delivery(api: Api, task_id: str, status: str, timeout: float = 10.0) -> Any:
    """Poll the API until the task's latest delivery has `status`; that delivery."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        listing = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()["deliveries"]
        if listing and listing[-1]["status"] == status:
            return listing[-1]
        if loop.time() > deadline:
            raise AssertionError(f"deliveries of {task_id} never became {status}: {listing}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def failing_receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver answering 500 until its `statuses` are cleared."""
    server = Receiver()
    server.answers = [500] * 100
    await server.start()
    yield server
    await server.stop()


@pytest.mark.usefixtures("worker")
async def test_stuck_deliveries_first_then_redeliver(
    api: Api,
    upstream: ScriptedUpstream,
    receiver: Receiver,
    failing_receiver: Receiver,
    tab: Tab,
) -> None:
    ok, failed, running, queued, stuck = (new_id() for _ in range(5))
    upstream.script(ok, finished(ok))
    upstream.script(failed, answer(failed, "failed", error="Content policy violation"))
    upstream.script(running, answer(running, "processing", percentage="45"))
    upstream.script(queued, answer(queued, "pending"))
    upstream.script(stuck, finished(stuck))
    for task_id in (stuck, ok, failed, running, queued):
        url = (failing_receiver if task_id == stuck else receiver).url + "/hooks"
        response = await api.register(task_id, webhook_url=url, metadata={"order": task_id[:8]})
        assert response.status_code == 201
    await api.wait_status(ok, "succeeded")
    await api.wait_status(failed, "failed")
    await api.wait_status(running, "running")
    first = await wait_delivery(api, stuck, "failed")
    assert len(first["attempts"]) == 4  # the first attempt and fast_env's three retries

    await tab.page.clock.install()  # real time flows; fast_forward jumps to the next auto-refresh
    await tab.sign_in(KEY_ALPHA)

    # The stuck delivery, alone, in the section that comes before the tasks table.
    failed_rows = tab.by("failed-row")
    await expect(failed_rows).to_have_count(1)
    await expect(failed_rows).to_have_attribute("data-task-id", stuck)
    await expect(failed_rows).to_contain_text("task.succeeded")
    await expect(failed_rows).to_contain_text("HTTP 500")
    await expect(tab.by("failed-count")).to_have_text("1")
    assert await tab.page.evaluate(
        """() => {
            const failed = document.querySelector('[data-testid="failed-section"]');
            const tasks = document.querySelector('[data-testid="tasks-table"]');
            return Boolean(failed.compareDocumentPosition(tasks) & Node.DOCUMENT_POSITION_FOLLOWING)
                && failed.getBoundingClientRect().bottom <= tasks.getBoundingClientRect().top;
        }"""
    )

    # Failed first, then running and queued, then succeeded.
    await expect(tab.by("task-row")).to_have_count(5)
    assert await tab.row_statuses() == ["failed", "running", "queued", "succeeded", "succeeded"]
    assert (await tab.row_ids())[:3] == [failed, running, queued]
    await expect(tab.task_row(failed)).to_contain_text("Content policy violation")
    await expect(tab.task_row(running)).to_contain_text("45 %")
    await expect(tab.task_row(running)).to_contain_text("imagine · midjourney")

    # The key lives in this tab's sessionStorage only.
    where = await tab.page.evaluate(
        "() => [location.href, localStorage.length, Object.values(sessionStorage)]"
    )
    assert where == [f"{tab.base}/status", 0, [KEY_ALPHA]]
    await expect(tab.by("key-input")).to_be_hidden()

    # The status filter asks the API for one status only.
    await tab.by("status-filter").select_option("failed")
    await expect(tab.by("task-row")).to_have_count(1)
    await expect(tab.by("task-row")).to_have_attribute("data-status", "failed")
    await tab.by("status-filter").select_option("")
    await expect(tab.by("task-row")).to_have_count(5)

    # A row opens onto its deliveries and every attempt.
    await tab.task_row(stuck).click()
    panel = tab.panel(stuck)
    await expect(panel).to_be_visible()
    await expect(tab.task_row(stuck).locator("button.toggle")).to_have_attribute(
        "aria-expanded", "true"
    )
    delivery = panel.get_by_test_id("delivery")
    await expect(delivery).to_have_count(1)
    await expect(delivery).to_have_attribute("data-status", "failed")
    await expect(delivery).to_contain_text(first["webhook_id"])
    attempts = panel.get_by_test_id("attempt-row")
    await expect(attempts).to_have_count(4)
    for i in range(4):
        await expect(attempts.nth(i)).to_contain_text("HTTP 500")
        await expect(attempts.nth(i)).to_contain_text(" ms")
    await tab.task_row(failed).click()
    await expect(tab.panel(failed).get_by_test_id("task-error")).to_have_text(
        "Content policy violation"
    )
    await expect(tab.panel(failed).get_by_test_id("delivery")).to_have_attribute(
        "data-status", "delivered"
    )

    # The receiver is fixed: Redeliver sends the same event again, same webhook-id.
    failing_receiver.answers.clear()
    await failed_rows.get_by_role("button", name="Redeliver").click()
    await failing_receiver.wait_for(5)
    ids = {r.headers["webhook-id"] for r in failing_receiver.received}
    assert ids == {first["webhook_id"]}
    await expect(tab.by("notice")).to_contain_text(f"Redelivery started for {first['webhook_id']}")
    await wait_delivery(api, stuck, "delivered")

    # The next auto-refresh (5 s on, fast-forwarded) shows it delivered; the section is empty.
    await tab.page.clock.fast_forward(5_000)
    await expect(delivery).to_have_attribute("data-status", "delivered")
    await expect(panel.get_by_test_id("attempt-row").last).to_contain_text("HTTP 204")
    await tab.refreshed()
    await expect(failed_rows).to_have_count(0)
    await expect(tab.by("failed-empty")).to_be_visible()
    await expect(tab.by("failed-count")).to_have_text("0")
    await expect(tab.by("redeliver-all")).to_be_disabled()
    await expect(tab.by("error-banner")).to_be_hidden()

    await tab.page.screenshot(path=SCREENSHOT, full_page=True)
    tab.assert_clean()


@pytest.mark.usefixtures("worker")
# Every attempt of both schedules reaches the receiver: no breaker holds it.
@pytest.mark.parametrize("env_overrides", [{"RELAY_RECEIVER_HOLD_AFTER": "0"}])
async def test_redeliver_all_failed(
    api: Api, upstream: ScriptedUpstream, failing_receiver: Receiver, tab: Tab
) -> None:
    tasks = [new_id(), new_id()]
    for task_id in tasks:
        upstream.script(task_id, finished(task_id))
        await api.register(task_id, webhook_url=failing_receiver.url)
    for task_id in tasks:
        await wait_delivery(api, task_id, "failed")
    await tab.sign_in(KEY_ALPHA)
    await expect(tab.by("failed-row")).to_have_count(2)

    failing_receiver.answers.clear()
    await tab.by("redeliver-all").click()
    await expect(tab.by("notice")).to_have_text("Redelivery started for 2 failed deliveries.")
    await expect(tab.by("failed-row")).to_have_count(0)
    await failing_receiver.wait_for(10)
    tab.assert_clean()


async def test_wrong_key_shows_the_error_and_no_data(api: Api, tab: Tab) -> None:
    task_id = new_id()
    assert (await api.register(task_id, metadata={"secret": "alpha-only"})).status_code == 201

    await tab.sign_in("key-wrong")
    await expect(tab.by("error-banner")).to_be_visible()
    await expect(tab.by("error-banner")).to_contain_text("Unknown key")
    await expect(tab.by("key-input")).to_be_visible()
    await expect(tab.by("key-input")).to_have_value("")
    await expect(tab.by("dashboard")).to_be_hidden()
    await expect(tab.by("task-row")).to_have_count(0)
    await expect(tab.by("failed-row")).to_have_count(0)
    assert task_id not in await tab.page.content()
    assert await tab.page.evaluate("() => sessionStorage.length + localStorage.length") == 0

    # The right key then works, and a reload keeps it (sessionStorage); Forget key drops it.
    await tab.by("key-input").fill(KEY_ALPHA)
    await tab.by("key-input").press("Enter")
    await expect(tab.by("task-row")).to_have_count(1)
    await expect(tab.by("error-banner")).to_be_hidden()
    await tab.page.reload()
    await expect(tab.task_row(task_id)).to_be_visible()
    await tab.by("forget-key").click()
    await expect(tab.by("key-input")).to_be_visible()
    await expect(tab.by("task-row")).to_have_count(0)
    assert await tab.page.evaluate("() => sessionStorage.length") == 0
    tab.assert_clean()


@pytest.mark.usefixtures("worker")
async def test_another_tenant_sees_none_of_alphas_tasks(
    api: Api, upstream: ScriptedUpstream, failing_receiver: Receiver, tab: Tab
) -> None:
    alpha_tasks = [new_id(), new_id()]
    for task_id in alpha_tasks:
        upstream.script(task_id, finished(task_id))
        await api.register(task_id, webhook_url=failing_receiver.url)
    beta_task = new_id()
    upstream.script(beta_task, answer(beta_task, "processing", percentage="10"))
    assert (await api.register(beta_task, key="key-beta-0123456789")).status_code == 201
    for task_id in alpha_tasks:
        await wait_delivery(api, task_id, "failed")

    await tab.sign_in("key-beta-0123456789")
    await expect(tab.by("task-row")).to_have_count(1)
    assert await tab.row_ids() == [beta_task]
    await expect(tab.by("failed-empty")).to_be_visible()
    await expect(tab.by("failed-row")).to_have_count(0)
    text = await tab.page.content()
    assert not any(task_id in text for task_id in alpha_tasks)
    tab.assert_clean()


@pytest.mark.usefixtures("worker")
async def test_markup_from_the_api_is_shown_as_text(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, tab: Tab
) -> None:
    task_id = new_id()
    error = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    metadata = {
        "note": "<script>window.__pwned=3</script>",
        "<img src=y onerror=window.__pwned=4>": "<b>bold?</b>",
    }
    upstream.script(task_id, answer(task_id, "failed", error=error, model="<i>m</i>"))
    await api.register(task_id, webhook_url=receiver.url, metadata=metadata)
    await api.wait_status(task_id, "failed")

    await tab.sign_in(KEY_ALPHA)
    row = tab.task_row(task_id)
    await expect(row).to_contain_text(error)
    await expect(row).to_contain_text("imagine · <i>m</i>")
    await row.click()
    panel = tab.panel(task_id)
    await expect(panel.get_by_test_id("task-error")).to_have_text(error)
    await expect(panel.get_by_test_id("task-metadata")).to_have_text(json.dumps(metadata, indent=2))
    await expect(panel.get_by_test_id("delivery")).to_have_attribute("data-status", "delivered")
    assert await tab.page.evaluate("() => window.__pwned") is None
    counts = await tab.page.evaluate(
        "() => [document.querySelectorAll('img, b, i').length, document.scripts.length]"
    )
    assert counts == [0, 1], "no element came from the API's text; the page's script only"
    tab.assert_clean()


def fake_task(n: int, status: str, updated: str) -> dict[str, Any]:
    final = status in ("succeeded", "failed", "timed_out")
    return {
        "task_id": str(uuid.UUID(int=n)),
        "status": status,
        "upstream_status": {"queued": "pending", "running": "processing"}.get(status, status),
        "progress": 100 if final else (None if status == "queued" else 30),
        "task_type": "imagine",
        "model": "midjourney",
        "result": {"images": [], "grid_image": None, "videos": [], "content": [], "seed": None},
        "error": "RELAY_TASK_DEADLINE passed" if status == "timed_out" else None,
        "webhook_url": None,
        "events": [],
        "metadata": {},
        "registered_at": "2026-11-29T10:00:00.000Z",
        "updated_at": updated,
        "completed_at": updated if final else None,
        "polls": n,
    }


async def fulfil(route: Route, body: object, status: int = 200) -> None:
    await route.fulfill(status=status, content_type="application/json", body=json.dumps(body))


async def test_every_status_sorts_and_storage_unavailable_is_said(api: Api, tab: Tab) -> None:
    """The API answered by the browser itself: timed_out tasks, and Redis down, on demand."""
    listing = [
        fake_task(1, "succeeded", "2026-11-29T10:00:09.000Z"),
        fake_task(2, "queued", "2026-11-29T10:00:08.000Z"),
        fake_task(3, "timed_out", "2026-11-29T10:00:07.000Z"),
        fake_task(4, "running", "2026-11-29T10:00:06.000Z"),
        fake_task(5, "failed", "2026-11-29T10:00:05.000Z"),
        fake_task(6, "succeeded", "2026-11-29T10:00:04.000Z"),
        fake_task(7, "timed_out", "2026-11-29T10:00:10.000Z"),
        fake_task(8, "failed", "2026-11-29T10:00:01.000Z"),
    ]
    down = False

    async def tasks(route: Route) -> None:
        if down:
            error = {"code": "unavailable", "message": "Storage is unavailable; try again shortly"}
            await fulfil(route, {"error": error}, status=503)
        else:
            await fulfil(route, {"tasks": listing, "next_cursor": None})

    async def failed(route: Route) -> None:
        await fulfil(route, {"deliveries": [], "next_cursor": None})

    await tab.page.route(re.compile(r"/v1/tasks\?"), tasks)
    await tab.page.route(re.compile(r"/v1/deliveries\?"), failed)
    await tab.sign_in(KEY_ALPHA)
    await expect(tab.by("task-row")).to_have_count(8)
    assert await tab.row_statuses() == [
        "failed", "failed", "timed_out", "timed_out", "running", "queued", "succeeded", "succeeded",
    ]  # fmt: skip
    uid = [str(uuid.UUID(int=n)) for n in range(9)]
    assert await tab.row_ids() == [uid[5], uid[8], uid[7], uid[3], uid[4], uid[2], uid[1], uid[6]]
    await expect(tab.task_row(uid[3])).to_contain_text("RELAY_TASK_DEADLINE passed")

    down = True
    await tab.by("refresh").click()
    await expect(tab.by("error-banner")).to_contain_text("Storage unavailable")
    await expect(tab.by("task-row")).to_have_count(8)  # the last good view stays, said stale
    await expect(tab.by("key-input")).to_be_hidden()
    down = False
    await tab.by("refresh").click()
    await expect(tab.by("error-banner")).to_be_hidden()
    tab.assert_clean()


async def test_follows_next_cursor_up_to_500_tasks(api: Api, tab: Tab) -> None:
    pages_asked: list[dict[str, list[str]]] = []

    async def tasks(route: Route) -> None:
        query = parse_qs(urlparse(route.request.url).query)
        pages_asked.append(query)
        page = int(query.get("cursor", ["0"])[0])
        body = [fake_task(page * 100 + i + 1, "succeeded", "2026-11-29T10:00:00.000Z")
                for i in range(100)]  # fmt: skip
        await fulfil(route, {"tasks": body, "next_cursor": str(page + 1)})  # never ends

    async def failed(route: Route) -> None:
        await fulfil(route, {"deliveries": [], "next_cursor": None})

    await tab.page.route(re.compile(r"/v1/tasks\?"), tasks)
    await tab.page.route(re.compile(r"/v1/deliveries\?"), failed)
    await tab.sign_in(KEY_ALPHA)
    await expect(tab.by("task-row")).to_have_count(500)
    await expect(tab.by("tasks-more")).to_be_visible()
    assert [q.get("cursor", [""])[0] for q in pages_asked] == ["", "1", "2", "3", "4"]
    assert all(q["limit"] == ["100"] for q in pages_asked)
    tab.assert_clean()


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [{"RELAY_DELIVERY_RETRY_SCHEDULE": "0.05,0.05,60"}])
async def test_held_receivers_are_shown(
    api: Api, upstream: ScriptedUpstream, failing_receiver: Receiver, tab: Tab
) -> None:
    tasks = [new_id() for _ in range(6)]  # enough failures in a row to hold the receiver
    for task_id in tasks:
        upstream.script(task_id, finished(task_id))
        await api.register(task_id, webhook_url=failing_receiver.url + "/hooks")
    for _ in range(200):
        if (await api.client.get("/v1/receivers")).json()["receivers"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the failing receiver was never held")
    await tab.sign_in(KEY_ALPHA)
    row = tab.by("held-row")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-origin", failing_receiver.url)
    await expect(tab.by("held-count")).to_have_text("1")
    tab.assert_clean()
