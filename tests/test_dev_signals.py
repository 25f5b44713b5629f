"""`relay dev` leaves nothing running: SIGTERM, SIGINT and SIGHUP end every child and its
private redis-server, and when it is killed outright (SIGKILL) its children follow it.

The children are found the way an operator would find them, in /proc, so the test
needs Linux (as PR_SET_PDEATHSIG, which covers SIGKILL, does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest

from relay.devtools.redis_server import free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

RELAY = Path(sys.executable).parent / "relay"
ROLES = {"api", "worker", "simulator", "redis-server"}


@dataclass(frozen=True)
class Proc:
    pid: int
    started: int  # clock ticks after boot: tells a reused pid apart
    argv: tuple[str, ...]
    cwd: str

    @property
    def role(self) -> str:
        if self.argv[1:3] == ("-m", "relay"):
            return self.argv[3]
        # redis-server rewrites its argv to one "redis-server 127.0.0.1:PORT" string.
        return Path(self.argv[0].split()[0]).name if self.argv else "?"


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields from the third on (state, ppid, ...), or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; it ends at the last ')'.
    return text.rpartition(")")[2].split()


def _proc(pid: int) -> Proc | None:
    fields = _stat(pid)
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    if fields is None:
        return None
    return Proc(pid, int(fields[19]), tuple(a.decode() for a in argv if a), cwd)


def descendants(root: int) -> list[Proc]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    found: list[Proc] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and (proc := _proc(pid)) is not None:
                found.append(proc)
                frontier.append(pid)
    return found


def running(proc: Proc) -> bool:
    """Still there: the same process, and not a zombie (finished, only not yet reaped)."""
    fields = _stat(proc.pid)
    return fields is not None and int(fields[19]) == proc.started and fields[0] not in "ZX"


@dataclass
class Dev:
    process: subprocess.Popen[bytes]
    port: int
    output: IO[bytes]
    children: list[Proc] = field(default_factory=list)

    def printed(self) -> str:
        self.output.seek(0)
        return self.output.read().decode(errors="replace")[-4000:]


@pytest.fixture
def dev() -> Iterator[Dev]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    port = free_port()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [str(RELAY), "dev", "--simulate", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = Dev(process, port, output)
        try:
            yield started
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
            _clean_up_after(started.children)


def _clean_up_after(children: list[Proc]) -> None:
    """Whatever a failed test left: its processes, and the private Redis's folder."""
    for proc in children:
        if running(proc):
            os.kill(proc.pid, signal.SIGKILL)
        # redis-server works in the private folder relay dev made for it (--dir).
        if proc.role == "redis-server" and Path(proc.cwd).name.startswith("relay-redis-"):
            shutil.rmtree(proc.cwd, ignore_errors=True)


def wait_ready(dev: Dev) -> list[Proc]:
    """Every child, once the API answers /readyz and all four are up."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert dev.process.poll() is None, f"relay dev exited early:\n{dev.printed()}"
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"http://127.0.0.1:{dev.port}/readyz", timeout=2)
            children = descendants(dev.process.pid)
            if ready.status_code == 200 and {c.role for c in children} >= ROLES:
                dev.children = children
                return children
        time.sleep(0.2)
    raise AssertionError(f"relay dev did not get ready:\n{dev.printed()}")


def still_running(children: list[Proc], within: float) -> list[Proc]:
    deadline = time.monotonic() + within
    left = [c for c in children if running(c)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [c for c in left if running(c)]
    return left


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name
)
def test_a_stop_signal_ends_every_child_and_the_private_redis(
    dev: Dev, signum: signal.Signals
) -> None:
    children = wait_ready(dev)
    assert {c.role for c in children} == ROLES, children

    dev.process.send_signal(signum)
    try:
        code = dev.process.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"relay dev did not stop on {signum.name}:\n{dev.printed()}") from None

    assert code == 0, f"exit {code}\n{dev.printed()}"
    # relay dev waits for its children before it exits: none may be left at all.
    assert still_running(children, within=0) == [], dev.printed()
    assert "stopped" in dev.printed()


def test_children_do_not_outlive_relay_dev_killed_outright(dev: Dev) -> None:
    children = wait_ready(dev)

    dev.process.kill()
    dev.process.wait(10)

    left = still_running(children, within=15)
    assert left == [], f"left behind: {[(c.pid, c.role) for c in left]}"
