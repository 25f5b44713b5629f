"""The synchronous client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
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


class RelayClient:
    """journey-relay's HTTP API, blocking. Use as a context manager, or call `close()`.

    `options` go to `httpx.Client` as they are (`verify`, `proxy`, `transport`, `limits`...).
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
        self._http = httpx.Client(**client_options(base_url, api_key, options))

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: Call[T]) -> T:
        attempt, retried = 0, False
        while True:
            try:
                response = self._http.request(
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
            time.sleep(delay)
            attempt, retried = attempt + 1, True

    def _pages(self, call_for: Callable[[str | None], Call[Page[T]]]) -> Iterator[Page[T]]:
        cursor: str | None = None
        while True:
            page = self._run(call_for(cursor))
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def register(
        self,
        task_id: TaskId,
        webhook_url: str | None = None,
        events: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        upstream_webhook: bool = False,
    ) -> Registered:
        """Track a task. Idempotent: the same registration again answers `created=False`;
        other values raise `Conflict`, whose `field` names the first that differs."""
        return self._run(calls.register(task_id, webhook_url, events, metadata, upstream_webhook))

    def get(self, task_id: TaskId) -> Task:
        return self._run(calls.get_task(task_id))

    def delete(self, task_id: TaskId) -> None:
        """Stop tracking the task for this tenant; no webhook follows."""
        self._run(calls.delete_task(task_id))

    def wait(self, task_id: TaskId, timeout: float | None = None) -> Task:
        """The task once it is final, by long-polls of at most a minute each; with `timeout`,
        the task as it is when that many seconds have passed (check `task.final`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            task = self._run(calls.wait_task(task_id, wait_slice(remaining)))
            if task.final or (deadline is not None and time.monotonic() >= deadline):
                return task

    def task_pages(self, status: str | None = None, page_size: int = 50) -> Iterator[Page[Task]]:
        """The tenant's tasks, newest first, a page at a time."""
        return self._pages(lambda cursor: calls.list_tasks(status, page_size, cursor))

    def list_tasks(self, status: str | None = None, page_size: int = 50) -> Iterator[Task]:
        """Every task of the tenant (in `status` if given), newest first, across pages."""
        for page in self.task_pages(status, page_size):
            yield from page.items

    def deliveries(self, task_id: TaskId) -> list[Delivery]:
        """Every delivery of the task's events, each with its attempts."""
        return self._run(calls.deliveries(task_id))

    def redeliver(self, task_id: TaskId) -> str:
        """Send the task's latest event again (same webhook-id); the new delivery's id.
        Raises `NoEvent` if the task has none yet."""
        return self._run(calls.redeliver(task_id))

    def redeliver_delivery(self, delivery_id: str) -> str:
        """Send one delivery's event again, such as a failed one; the new delivery's id."""
        return self._run(calls.redeliver_delivery(delivery_id))

    def failed_delivery_pages(self, page_size: int = 50) -> Iterator[Page[Delivery]]:
        return self._pages(lambda cursor: calls.failed_deliveries(page_size, cursor))

    def failed_deliveries(self, page_size: int = 50) -> Iterator[Delivery]:
        """The tenant's deliveries that spent their retry schedule, most recent first."""
        for page in self.failed_delivery_pages(page_size):
            yield from page.items

    def redeliver_failed(self) -> list[str]:
        """A new attempt series for every failed delivery of the tenant; their ids."""
        return self._run(calls.redeliver_failed())
