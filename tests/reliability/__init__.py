"""Reliability: crashes, Redis restarts, delivery semantics, SSRF and secrets.

The helpers here are shared by the modules of this package: real `relay`
processes, a receiver whose every answer is scripted, and bounded waits.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import httpx
from aiohttp import web

from tests.servers import Canned, Received, Receiver

RELAY = Path(sys.executable).parent / "relay"


def clean_env(**extra: str) -> dict[str, str]:
    """The machine's environment without any RELAY_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(extra)
    return env


class Proc:
    """A child `relay` process, its stdout and stderr in one temporary file."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.args = args
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.process = subprocess.Popen(
            [str(RELAY), *args], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        if self.log.closed:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    async def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.process.poll()

    async def wait_output(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            assert self.alive(), f"relay {self.args[0]} exited: {self.output()[-3000:]}"
            await asyncio.sleep(0.05)
        raise AssertionError(f"relay {self.args[0]} never said {text!r}: {self.output()[-3000:]}")

    def sigkill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def sigterm(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def close(self) -> None:
        self.sigkill()
        self.log.close()


async def wait_ready(base_url: str, proc: Proc, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while time.monotonic() < deadline:
            assert proc.alive(), f"relay api exited: {proc.output()}"
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"relay api never became ready: {proc.output()}")


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.1
) -> None:
    """Wait until `check()` is true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(interval)


def answer(task_id: str, status: str, **fields: Any) -> dict[str, Any]:
    """One upstream fetch answer."""
    return {
        "task_id": task_id,
        "task_type": "imagine",
        "model": "midjourney",
        "status": status,
        **fields,
    }


def finished(task_id: str) -> dict[str, Any]:
    return answer(task_id, "finished", image_url=f"https://images.example/{task_id}.png")


class ScriptedReceiver(Receiver):
    """A receiver whose answers are scripted: by `respond(received)` if set, else from
    `answers` in order, else 204. Records when each POST arrived (monotonic) and its path."""

    def __init__(self, respond: Callable[[Received], Canned] | None = None) -> None:
        super().__init__()  # routes every POST to self._hook, this class's
        self.respond = respond
        self.answers: list[Canned] = []
        self.arrivals: list[float] = []
        self.paths: list[str] = []

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        received = Received(dict(request.headers), body)
        async with self.arrived:
            self.received.append(received)
            self.arrivals.append(time.monotonic())
            self.paths.append(request.path)
            self.arrived.notify_all()
        if self.respond is not None:
            reply = self.respond(received)
        elif self.answers:
            reply = self.answers.pop(0)
        else:
            reply = Canned(b"", status=204)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        return web.Response(body=payload, status=reply.status, headers=reply.headers)
