"""Retries against a real loopback server that answers 503 (or drops the connection) and
then 200: idempotent calls are retried with backoff, the others are not."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from relay_client import (
    AsyncRelayClient,
    NotFound,
    RelayClient,
    RelayConnectionError,
    RetryPolicy,
    ServerError,
    Unavailable,
)

from tests.kit.test_models import TASK

DROP = "drop"  # close the connection without an answer
UNAVAILABLE = (503, {"error": {"code": "unavailable", "message": "Storage is unavailable"}})
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


@dataclasses.dataclass
class Flaky:
    """Answers each request with the next scripted answer; the last one repeats."""

    script: list[Any]
    seen: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def next(self, method: str, path: str) -> Any:
        self.seen.append((method, path))
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, str]]:
    state = Flaky([])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            step = state.next(self.command, self.path)
            if step == DROP:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            status, body = step
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            if status == 503:
                self.send_header("retry-after", "0")
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_DELETE = answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_get_is_retried_on_503_until_it_answers(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.script = [UNAVAILABLE, UNAVAILABLE, (200, TASK)]
    with RelayClient(url, "k", retry=FAST) as relay:
        assert relay.get(TASK["task_id"]).task_id == TASK["task_id"]
    assert len(state.seen) == 3


def test_register_is_retried_and_a_lost_answer_is_recovered(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.script = [DROP, UNAVAILABLE, (200, TASK)]
    with RelayClient(url, "k", retry=FAST) as relay:
        registered = relay.register(TASK["task_id"])
    assert registered.task.task_id == TASK["task_id"] and not registered.created
    assert state.seen == [("POST", "/v1/tasks")] * 3


def test_a_delete_whose_answer_was_lost_is_done(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.script = [DROP, (404, {"error": {"code": "not_found", "message": "No such task"}})]
    with RelayClient(url, "k", retry=FAST) as relay:
        assert relay.delete(TASK["task_id"]) is None
        state.script = [(404, {"error": {"code": "not_found", "message": "No such task"}})]
        with pytest.raises(NotFound):
            relay.delete(TASK["task_id"])


@pytest.mark.parametrize(
    "path",
    ["/v1/tasks/x/redeliver", "/v1/deliveries/d/redeliver", "/v1/deliveries/redeliver"],
)
def test_redeliveries_are_never_sent_twice(flaky: tuple[Flaky, str], path: str) -> None:
    state, url = flaky
    state.script = [UNAVAILABLE, (202, {"delivery_id": "d", "delivery_ids": []})]
    with RelayClient(url, "k", retry=FAST) as relay, pytest.raises(Unavailable):
        if path.startswith("/v1/tasks"):
            relay.redeliver("x")
        elif path == "/v1/deliveries/redeliver":
            relay.redeliver_failed()
        else:
            relay.redeliver_delivery("d")
    assert state.seen == [("POST", path)]


def test_retries_stop_after_the_policys_attempts(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.script = [UNAVAILABLE]
    with RelayClient(url, "k", retry=FAST) as relay, pytest.raises(Unavailable) as caught:
        relay.get(TASK["task_id"])
    assert len(state.seen) == FAST.attempts
    assert caught.value.code == "unavailable" and caught.value.status == 503


def test_other_server_errors_are_not_retried(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.script = [(500, {"error": {"code": "internal", "message": "Internal error"}})]
    with RelayClient(url, "k", retry=FAST) as relay, pytest.raises(ServerError):
        relay.get(TASK["task_id"])
    assert len(state.seen) == 1


def test_a_relay_that_is_not_there_raises_after_the_retries() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    relay = RelayClient(f"http://127.0.0.1:{port}", "k", retry=FAST)
    with relay, pytest.raises(RelayConnectionError) as caught:
        relay.get(TASK["task_id"])
    assert caught.value.status is None and "ConnectError" in caught.value.message


async def test_the_async_client_retries_the_same_way(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.script = [UNAVAILABLE, DROP, (200, TASK)]
    async with AsyncRelayClient(url, "k", retry=FAST) as relay:
        task = await relay.get(TASK["task_id"])
        assert task.status == "succeeded"
        assert len(state.seen) == 3
        state.script = [UNAVAILABLE, (202, {"delivery_id": "d"})]
        with pytest.raises(Unavailable):
            await relay.redeliver("x")
        assert len(state.seen) == 4
        state.script = [DROP, (200, {"tasks": [TASK], "next_cursor": None})]
        assert [t.task_id async for t in relay.list_tasks()] == [TASK["task_id"]]
        assert state.seen[-1] == ("GET", "/v1/tasks?limit=50")


async def test_the_key_travels_as_a_bearer_token_only(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    seen: list[dict[str, str]] = []
    state.script = [(200, TASK)]
    async with AsyncRelayClient(url, "secret-key", event_hooks={"request": [capture(seen)]}) as r:
        await r.get(TASK["task_id"])
    assert seen[0]["authorization"] == "Bearer secret-key"
    assert seen[0]["user-agent"].startswith("journey-relay-client/")
    assert "secret-key" not in repr(r)


def capture(into: list[dict[str, str]]) -> Any:
    async def hook(request: Any) -> None:
        into.append(dict(request.headers))

    return hook
