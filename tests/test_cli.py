"""The `relay` console script, run as real processes with a controlled environment."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import IO

import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from relay import __version__
from relay.devtools.redis_server import RedisServer, free_port
from support.payloads import answer, new_id, processing
from support.processes import RELAY, Proc, clean_env, wait_ready
from support.servers import Receiver, ScriptedUpstream
from tests.conftest import API_KEYS, WEBHOOK_SECRET, fast_env


def run(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RELAY), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_the_console_script_is_installed() -> None:
    assert RELAY.exists(), RELAY


def test_version() -> None:
    done = run("--version", env=clean_env())
    assert done.returncode == 0
    assert __version__ in done.stdout
    assert "journey-relay" in done.stdout


def test_api_without_keys_exits_2_naming_the_variable() -> None:
    done = run("api", "--port", str(free_port()), env=clean_env())
    assert done.returncode == 2, done
    assert "RELAY_API_KEYS" in one_line(done.stderr)


@pytest.mark.parametrize(
    ("command", "missing"),
    [("worker", "RELAY_UPSTREAM_API_KEY"), ("worker", "RELAY_WEBHOOK_SECRET")],
)
def test_worker_without_a_required_setting_exits_2(command: str, missing: str) -> None:
    env = clean_env(RELAY_UPSTREAM_API_KEY="upstream-key", RELAY_WEBHOOK_SECRET=WEBHOOK_SECRET)
    del env[missing]
    done = run(command, env=env)
    assert done.returncode == 2, done
    assert missing in one_line(done.stderr)


@pytest.mark.parametrize("value", ["soon", "-1", "0", "nan"])
def test_worker_with_a_malformed_interval_exits_2_naming_it(value: str) -> None:
    env = clean_env(
        RELAY_UPSTREAM_API_KEY="upstream-key",
        RELAY_WEBHOOK_SECRET=WEBHOOK_SECRET,
        RELAY_POLL_MIN_INTERVAL=value,
    )
    done = run("worker", env=env)
    assert done.returncode == 2, done
    assert "RELAY_POLL_MIN_INTERVAL" in one_line(done.stderr)


def test_a_leaked_secret_is_not_echoed_in_the_error() -> None:
    env = clean_env(RELAY_UPSTREAM_API_KEY="upstream-key", RELAY_WEBHOOK_SECRET="s3cr3t-value")
    done = run("worker", env=env)
    assert done.returncode == 2, done
    line = one_line(done.stderr)
    assert "RELAY_WEBHOOK_SECRET" in line
    assert "s3cr3t-value" not in line


@pytest.mark.parametrize("args", [("api", "--port", "0"), ("worker",)])
def test_unreachable_redis_exits_non_zero_with_one_line(args: tuple[str, ...]) -> None:
    env = clean_env(
        RELAY_API_KEYS=API_KEYS,
        RELAY_UPSTREAM_API_KEY="upstream-key",
        RELAY_WEBHOOK_SECRET=WEBHOOK_SECRET,
        RELAY_REDIS_URL=f"redis://:hunter2-pass@127.0.0.1:{free_port()}/0",
    )
    done = run(*args, env=env)
    assert done.returncode != 0, done
    line = one_line(done.stderr)
    assert "redis" in line.lower() and "reach" in line.lower(), line
    assert "hunter2-pass" not in line, "the Redis password is not printed"


# --- a real end-to-end through the console script ----------------------------------------


async def test_api_and_worker_processes_deliver_a_signed_webhook_and_stop_on_sigterm(
    redis_server: RedisServer, redis: Redis, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    upstream.script(
        task_id,
        processing(task_id, "50"),
        answer(task_id, "finished", model="flux-pro", image_url="https://images.example/f.png"),
    )
    port = free_port()
    env = clean_env(**fast_env(redis_server.url, upstream.url))
    api = Proc("api", "--port", str(port), env=env)
    worker = Proc("worker", env=env)
    try:
        base_url = f"http://127.0.0.1:{port}"
        await wait_ready(base_url, api)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"authorization": "Bearer key-alpha-0123456789"}, timeout=10
        ) as client:
            response = await client.post(
                "/v1/tasks",
                json={"task_id": task_id, "webhook_url": receiver.url + "/hook"},
            )
            assert response.status_code == 201, response.text

            try:
                await receiver.wait_for(1, timeout=20)
            except TimeoutError:
                raise AssertionError(
                    f"no webhook; worker said: {worker.output()}\napi said: {api.output()}"
                ) from None
            (received,) = receiver.received
            event = Webhook(WEBHOOK_SECRET).verify(received.body, received.headers)
            assert event["type"] == "task.succeeded"
            assert event["data"]["task_id"] == task_id
            assert event["data"]["result"]["images"] == ["https://images.example/f.png"]
            body = (await client.get(f"/v1/tasks/{task_id}")).json()
            assert body["status"] == "succeeded"

        api.process.send_signal(signal.SIGTERM)
        worker.process.send_signal(signal.SIGTERM)
        api_code, worker_code = await asyncio.gather(api.wait(30), worker.wait(30))
        assert (api_code, worker_code) == (0, 0), (
            f"relay api exited {api_code}:\n{api.output()[-3000:]}\n"
            f"relay worker exited {worker_code}:\n{worker.output()[-3000:]}"
        )
        assert "Traceback" not in api.output() + worker.output()
        assert not port_open(port)
    finally:
        api.close()
        worker.close()


async def test_the_api_keeps_an_idle_connection_longer_than_clients_do(
    redis_server: RedisServer, redis: Redis, upstream: ScriptedUpstream
) -> None:
    """httpx drops a connection idle for 5 s; a server closing at 5 s too would race
    the client's next request on it."""
    port = free_port()
    api = Proc(
        "api", "--port", str(port), env=clean_env(**fast_env(redis_server.url, upstream.url))
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}", api)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"
        for pause in (0.0, 6.0):
            await asyncio.sleep(pause)
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), (pause, head, api.output()[-2000:])
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            assert length is not None
            await asyncio.wait_for(reader.readexactly(int(length.group(1))), 5)
        writer.close()
    finally:
        api.close()


# --- relay dev --simulate ----------------------------------------------------------------


class Lines:
    """Collects a pipe's lines in a thread, so the test can look at them as they come."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            with self._lock:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def text(self) -> str:
        return "\n".join(self.snapshot())


def has(lines: list[str], *words: str) -> bool:
    return any(all(word in line for word in words) for line in lines)


@pytest.fixture
def dev_process() -> Iterator[tuple[subprocess.Popen[bytes], Lines, IO[bytes]]]:
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [str(RELAY), "dev", "--simulate", "--port", str(free_port())],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,  # its own process group: a failed test can stop it all
        )
        assert process.stdout is not None
        lines = Lines(process.stdout)
        try:
            yield process, lines, err
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group of the process started here
            process.wait()


def test_dev_simulate_runs_everything_and_stops_its_private_redis_on_sigint(
    dev_process: tuple[subprocess.Popen[bytes], Lines, IO[bytes]],
) -> None:
    process, lines, err = dev_process

    def stderr_text() -> str:
        err.seek(0)
        return err.read().decode(errors="replace")[-4000:]

    def wanted(seen: list[str]) -> bool:
        return (
            has(seen, "private Redis")
            and has(seen, "registered")
            and has(seen, "webhook")
            and has(seen, "signature ok")
        )

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None and not wanted(lines.snapshot()):
        time.sleep(0.2)
    seen = lines.snapshot()
    assert process.poll() is None, f"relay dev exited early:\n{lines.text()}\n{stderr_text()}"
    assert wanted(seen), f"relay dev printed:\n{lines.text()}\nstderr:\n{stderr_text()}"
    assert not has(seen, "SIGNATURE MISMATCH")

    match = re.search(r"private Redis at redis://127\.0\.0\.1:(\d+)", lines.text())
    assert match, lines.text()
    redis_port = int(match.group(1))
    assert port_open(redis_port)

    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"relay dev did not stop:\n{lines.text()}") from None
    assert code == 0, f"exit {code}\n{lines.text()}\n{stderr_text()}"
    deadline = time.monotonic() + 5
    while port_open(redis_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_open(redis_port), "the private redis-server outlived relay dev"
