"""The asyncio client: the calls of `RelayClient`, awaited."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx

from relay_client import calls
from relay_client.calls import Call
from relay_client.exchange import (
    client_options,
    next_delay,
    request_args,
    settle,
    unreachable,
    wait_slice,
)
from relay_client.models import Delivery, Page, Registered, Task
from relay_client.retry import RetryPolicy

T = TypeVar("T")
TaskId = str | uuid.UUID


class AsyncRelayClient:
    """journey-relay's HTTP API for asyncio. Use with `async with`, or `await aclose()`.

    `options` go to `httpx.AsyncClient` as they are (`verify`, `proxy`, `transport`...).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        **options: Any,
    ) -> None:
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(**client_options(base_url, api_key, options))

    async def __aenter__(self) -> AsyncRelayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, call: Call[T]) -> T:
        attempt, retried = 0, False
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, **request_args(call, self._timeout)
                )
            except httpx.TransportError as exc:
                delay = next_delay(call, self._retry, attempt, None)
                if delay is None:
                    raise unreachable(call, exc) from exc
            else:
                delay = next_delay(call, self._retry, attempt, response)
                if delay is None:
                    return settle(call, response, retried)
            await asyncio.sleep(delay)
            attempt, retried = attempt + 1, True

    async def _pages(
        self, call_for: Callable[[str | None], Call[Page[T]]]
    ) -> AsyncIterator[Page[T]]:
        cursor: str | None = None
        while True:
            page = await self._run(call_for(cursor))
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def register(
        self,
        task_id: TaskId,
        webhook_url: str | None = None,
        events: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        upstream_webhook: bool = False,
    ) -> Registered:
        """Track a task. Idempotent: the same registration again answers `created=False`;
        other values raise `Conflict`, whose `field` names the first that differs."""
        call = calls.register(task_id, webhook_url, events, metadata, upstream_webhook)
        return await self._run(call)

    async def get(self, task_id: TaskId) -> Task:
        return await self._run(calls.get_task(task_id))

    async def delete(self, task_id: TaskId) -> None:
        """Stop tracking the task for this tenant; no webhook follows."""
        await self._run(calls.delete_task(task_id))

    async def wait(self, task_id: TaskId, timeout: float | None = None) -> Task:
        """The task once it is final, by long-polls of at most a minute each; with `timeout`,
        the task as it is when that many seconds have passed (check `task.final`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            task = await self._run(calls.wait_task(task_id, wait_slice(remaining)))
            if task.final or (deadline is not None and time.monotonic() >= deadline):
                return task

    def task_pages(
        self, status: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Page[Task]]:
        """The tenant's tasks, newest first, a page at a time."""
        return self._pages(lambda cursor: calls.list_tasks(status, page_size, cursor))

    async def list_tasks(
        self, status: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Task]:
        """Every task of the tenant (in `status` if given), newest first, across pages."""
        async for page in self.task_pages(status, page_size):
            for task in page.items:
                yield task

    async def deliveries(self, task_id: TaskId) -> list[Delivery]:
        """Every delivery of the task's events, each with its attempts."""
        return await self._run(calls.deliveries(task_id))

    async def redeliver(self, task_id: TaskId) -> str:
        """Send the task's latest event again (same webhook-id); the new delivery's id.
        Raises `NoEvent` if the task has none yet."""
        return await self._run(calls.redeliver(task_id))

    async def redeliver_delivery(self, delivery_id: str) -> str:
        """Send one delivery's event again, such as a failed one; the new delivery's id."""
        return await self._run(calls.redeliver_delivery(delivery_id))

    def failed_delivery_pages(self, page_size: int = 50) -> AsyncIterator[Page[Delivery]]:
        return self._pages(lambda cursor: calls.failed_deliveries(page_size, cursor))

    async def failed_deliveries(self, page_size: int = 50) -> AsyncIterator[Delivery]:
        """The tenant's deliveries that spent their retry schedule, most recent first."""
        async for page in self.failed_delivery_pages(page_size):
            for delivery in page.items:
                yield delivery

    async def redeliver_failed(self) -> list[str]:
        """A new attempt series for every failed delivery of the tenant; their ids."""
        return await self._run(calls.redeliver_failed())
