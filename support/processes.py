"""Real `relay` console-script processes for the tests, with a controlled environment."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

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
