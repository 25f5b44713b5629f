"""Shared by every benchmark: servers and processes, CPU accounting, bulk set-up, output.

Every benchmark starts its own servers on loopback (127.0.0.1) in child
processes, bounds each phase in time, and stops everything it started, even
when it fails or is interrupted (`Stack`). Figures are compared as ratios
measured in the same run: the machines are small (2 cores) and shared.

Output: each benchmark prints its table(s), then one line per figure,

    name value unit (note)

where the note is the ratio to the figure's bare limit when it has one, or
the target and whether it is met.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from relay.core import lifecycle
from relay.core.lifecycle import Step
from relay.core.model import DEFAULT_EVENTS, Observation, Registration, TaskState, new_rid
from relay.core.normalize import normalize
from relay.core.schedule import PollPolicy
from relay.devtools.redis_server import RedisServer, free_port
from relay.store.codec import dump_state, load_state
from relay.store.deliveries import DeliveryQueue
from relay.store.polls import Outcome, PollQueue
from relay.store.redis import Client, connect
from relay.store.registry import RegisterOutcome, Registry
from support.load_servers import API_KEY
from support.payloads import TASK, processing

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"  # every server of every benchmark listens here, and only here
UPSTREAM_KEY = API_KEY  # what the stand-in upstream (support.load_servers) accepts
WEBHOOK_SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMDEyMzQ1Njc4OQ=="
TENANT = "bench"

# The benchmarks `python -m bench` runs, in order (module names under bench/).
BENCHMARKS: tuple[str, ...] = (
    "polling",
    "scaleout",
    "delivery",
    "api",
    "end_to_end",
    "memory",
    "recovery",
    "receivers",
    "fairness",
)

RESULT_LINE = re.compile(r"^(\S+) (-?(?:[0-9][0-9.]*(?:e[+-]?[0-9]+)?|nan|inf)) (\S+) \((.+)\)$")


# --- output -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    note: str  # "0.62x bare", or "target < 100 ms: met"

    def line(self) -> str:
        return f"{self.name} {fmt(self.value)} {self.unit} ({self.note})"


def fmt(value: float) -> str:
    if value != value or math.isinf(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01 or value == 0:
        return f"{value:.3g}"
    return f"{value:.2e}"


def ratio_note(value: float, bare: float, label: str = "bare") -> str:
    ratio = value / bare if bare else math.nan
    return f"{ratio:.2f}x {label}"


def target_note(met: bool, text: str) -> str:
    return f"target {text}: {'met' if met else 'MISSED'}"


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [
        [fmt(c) if isinstance(c, float) else str(c) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n## {title}")
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def print_results(results: Iterable[Result]) -> None:
    print()
    for result in results:
        print(result.line())
    sys.stdout.flush()


def say(message: str) -> None:
    """A progress line (stderr, so stdout stays tables and results)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- processes --------------------------------------------------------------------------------


class Child:
    """A child process of a benchmark; its stderr goes to a log file kept for failures."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: str) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not end in `timeout` seconds."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


class Stack(contextlib.ExitStack):
    """Owns every process and server a benchmark starts; stops them all on exit."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="relay-bench-")
        self.callback(self._remove_dir)
        self._previous_term = signal.getsignal(signal.SIGTERM)
        # A SIGTERM to the benchmark unwinds like Ctrl-C, so the children are stopped.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        self.callback(signal.signal, signal.SIGTERM, self._previous_term)

    def _remove_dir(self) -> None:
        import shutil

        if not os.environ.get("RELAY_BENCH_KEEP_LOGS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def redis(self, *extra_args: str) -> RedisServer:
        server = RedisServer(extra_args=extra_args).start()
        self.callback(server.cleanup)
        return server

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        ready: str | None = "READY",
        timeout: float = 30.0,
    ) -> Child:
        """Start `argv` (python is prepended) and wait for a line starting with `ready`."""
        log_path = os.path.join(self.dir, f"{name}-{secrets.token_hex(3)}.log")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        )
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                [PYTHON, *argv],
                cwd=REPO,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
                stderr=log,
            )
        child = Child(name, popen, log_path)
        self.callback(child.stop)
        if ready is not None:
            assert popen.stdout is not None
            deadline = time.monotonic() + timeout
            line = b""
            while time.monotonic() < deadline:
                line = popen.stdout.readline()
                if not line:
                    break  # exited
                if line.decode(errors="replace").startswith(ready):
                    break
            if not line.decode(errors="replace").startswith(ready):
                child.kill()
                raise RuntimeError(f"{name} did not start:\n{child.log_tail()}")
        return child

    def upstream(self, *args: str) -> tuple[Child, str]:
        """The stand-in upstream (support.load_servers via bench/_servers.py), its base URL."""
        port = free_port()
        child = self.spawn(
            "upstream", ["-m", "bench._servers", "upstream", "--port", str(port), *args]
        )
        return child, f"http://{HOST}:{port}"

    def receiver(self, *args: str) -> tuple[Child, str]:
        """A webhook receiver answering 204 (support.load_servers), its base URL."""
        port = free_port()
        child = self.spawn(
            "receiver", ["-m", "bench._servers", "receiver", "--port", str(port), *args]
        )
        return child, f"http://{HOST}:{port}"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc, else psutil)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        import psutil  # type: ignore[import-untyped,unused-ignore]

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)


def tcp_ports_to(pid: int, remote_port: int) -> set[int]:
    """Local ports of a process's TCP connections to `remote_port` (Linux /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
                ports.add(int(local.split(":")[1], 16))
    return ports


def http_json(url: str, body: Any = None, timeout: float = 30.0) -> Any:
    """GET (or POST `body` as JSON) a loopback control route; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        headers={"content-type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def wait_until(check: Any, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


# --- the worker's environment -----------------------------------------------------------------


def worker_env(redis_url: str, upstream_url: str, **overrides: str) -> dict[str, str]:
    """Settings for a worker process (the runner or `relay worker`) and `relay api`."""
    env = {
        "RELAY_REDIS_URL": redis_url,
        "RELAY_UPSTREAM_URL": upstream_url,
        "RELAY_UPSTREAM_API_KEY": UPSTREAM_KEY,
        "RELAY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RELAY_API_KEYS": f"{TENANT}=bench-client-key",
        "RELAY_ALLOW_PRIVATE_WEBHOOKS": "1",
        "RELAY_LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


# Every task always due: the loop itself is the bound.
HOT_POLLING = {
    "RELAY_POLL_MIN_INTERVAL": "0.001",
    "RELAY_POLL_MAX_INTERVAL": "0.01",
    "RELAY_UPSTREAM_RATE": "1000000000",
}


# --- bulk set-up in Redis -------------------------------------------------------------------------

REGISTER_CHUNK = 200  # registrations in flight at once (each its own few round trips)
RETENTION = 7 * 86400.0  # RELAY_RETENTION's default, for the store objects set-up uses


async def register_tasks(
    redis: Client,
    task_ids: Sequence[str],
    *,
    webhook_url: str | None = None,
    events: tuple[str, ...] = DEFAULT_EVENTS,
    metadata: dict[str, Any] | None = None,
    running: bool = False,
    first_poll: Callable[[str], float] | None = None,
    deadline: float = 3 * 3600.0,
    tenant: str = TENANT,
) -> dict[str, str]:
    """Register tasks as the API does (`Registry.register`, REGISTER_CHUNK at a time);
    their stored states.

    With `running`, each task is then put in the state one `processing 50%`
    poll leaves, so every later poll of the stand-in is the same steady-state
    poll (no event, no fan-out) whatever the task count. That write counts no
    poll and makes no event, as if the task had been registered in that state;
    the task is due `first_poll(task_id)` seconds later (at once by default).
    """
    registry = Registry(redis, task_deadline=deadline, retention=RETENTION, max_tasks=1 << 30)
    stored: dict[str, str] = {}
    for start in range(0, len(task_ids), REGISTER_CHUNK):
        chunk = task_ids[start : start + REGISTER_CHUNK]
        now = time.time()
        answers = await asyncio.gather(
            *(
                registry.register(
                    Registration(
                        tenant=tenant,
                        task_id=task_id,
                        registered_at=now,
                        rid=new_rid(),
                        webhook_url=webhook_url,
                        events=events,
                        metadata=metadata or {},
                    )
                )
                for task_id in chunk
            )
        )
        bad = [
            (t, a.outcome)
            for t, a in zip(chunk, answers, strict=True)
            if a.outcome is not RegisterOutcome.CREATED
        ]
        if bad:
            raise RuntimeError(f"registration did not create tasks: {bad[:3]}")
        stored.update((t, dump_state(a.view.state)) for t, a in zip(chunk, answers, strict=True))
    if running:
        steady = normalize(processing(TASK, "50"))
        policy = PollPolicy()

        def start_running(task_id: str, state: TaskState, now: float) -> Step:
            running_state = lifecycle.observe(state, steady, now, policy).state
            return Step(running_state, None, first_poll(task_id) if first_poll else 0.0)

        stored = await _write_steps(redis, stored, start_running, count_poll=False)
    return stored


async def apply_answers(
    redis: Client,
    stored: dict[str, str],
    answer: Any,
) -> dict[str, str]:
    """Feed each task one upstream answer through `PollQueue.apply`, as the upstream webhook does.

    `answer(task_id)` gives the fetch body. Returns the new stored states.
    """
    policy = PollPolicy()

    def observe(task_id: str, state: TaskState, now: float) -> Step:
        observation: Observation = normalize(answer(task_id), task_id)
        return lifecycle.observe(state, observation, now, policy)

    return await _write_steps(redis, stored, observe, count_poll=True)


async def _write_steps(
    redis: Client,
    stored: dict[str, str],
    step_of: Callable[[str, TaskState, float], Step],
    *,
    count_poll: bool,
    batch: int = 500,
) -> dict[str, str]:
    """Write `step_of(task_id, state, now)` for each task through `PollQueue.apply`,
    `batch` at a time; the new stored states."""
    queue = PollQueue(redis, rate=1e9, retention=RETENTION)
    items = list(stored.items())
    written: dict[str, str] = {}
    polls_after = 1 if count_poll else 0
    for start in range(0, len(items), batch):
        now = time.time()
        outcomes = []
        for task_id, raw_state in items[start : start + batch]:
            step = step_of(task_id, load_state(raw_state), now)
            outcomes.append(
                Outcome(task_id, raw_state, step, polls_after=polls_after, count_poll=count_poll)
            )
            written[task_id] = dump_state(step.state)
        replies = (await queue.apply(outcomes, now)).replies
        bad = [r for r in replies if r != "ok"]
        if bad:
            raise RuntimeError(f"outcomes not written: {bad[:3]}")
    return written


async def deliveries_due(redis: Client) -> int:
    """Deliveries waiting in every shard's queue (pending, not yet delivered or failed)."""
    return await DeliveryQueue(redis, retention=RETENTION).due_count()


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Redis]:
    """A Redis client for set-up code, closed on exit (one per event loop)."""
    client = Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def connected_store(url: str) -> AsyncIterator[Client]:
    """The client the relay itself opens for `url` (`relay.store.redis.connect`: one Redis,
    Sentinel or a `redis+cluster://` URL), for set-up code, closed on exit."""
    client = connect(url)
    try:
        yield client
    finally:
        await client.aclose()


# --- measuring a window of calls at the stand-in upstream -------------------------------------


@dataclasses.dataclass(frozen=True)
class Window:
    calls: int
    seconds: float
    cpu_us_per_call: dict[str, float]  # per process group: CPU microseconds per call
    max_concurrency: int
    overlaps: int
    refused: int

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def measure_calls(
    upstream_url: str, groups: dict[str, Sequence[int]], warmup: float, window: float
) -> Window:
    """Upstream calls/s over `window` seconds after `warmup`, and CPU per call per group."""
    time.sleep(warmup)
    cpu0 = {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}
    start = http_json(upstream_url + "/stats")
    time.sleep(window)
    end = http_json(upstream_url + "/stats")
    cpu1 = {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}
    calls = int(end["calls"] - start["calls"])
    per_call = {
        name: (cpu1[name] - cpu0[name]) * 1e6 / calls if calls else math.nan for name in groups
    }
    return Window(
        calls=calls,
        seconds=float(end["time"] - start["time"]),
        cpu_us_per_call=per_call,
        max_concurrency=int(end["max_concurrency"]),
        overlaps=int(end["overlaps"]),
        refused=int(end["refused"]),
    )


def size_label(count: int) -> str:
    return f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else str(count)


def standard_args(description: str | None) -> Any:
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="a few seconds at a tiny size")
    return parser


def wait_for_log(child: Child, text: str, timeout: float = 30.0) -> None:
    """Wait until `text` is in the child's stderr log (`relay worker` prints no READY)."""

    def seen() -> bool:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
        with open(child.log_path, errors="replace") as handle:
            return text in handle.read()

    if not wait_until(seen, timeout, 0.05):
        raise RuntimeError(f"{child.name} did not log {text!r}:\n{child.log_tail()}")
