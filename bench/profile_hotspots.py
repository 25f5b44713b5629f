"""Where a worker's (or the API's) CPU goes under benchmark load, sampled with py-spy.

    .venv/bin/python -m bench.profile_hotspots [--only polling|delivery|api] [--seconds S]

Not part of `make bench` (py-spy is not a dependency: `.venv/bin/pip install
py-spy`). Sets up the same scenarios as bench.polling (10,000 tracked,
aiohttp), bench.delivery (20,000 pending webhooks) and bench.api (relay api
under 64 connections), attaches `py-spy record --format raw` to the process
under test, and prints the functions with the most samples: self (the frame
running) and inclusive (anywhere on the stack), as a share of CPU samples.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench._common import (
    HOST,
    HOT_POLLING,
    Stack,
    apply_answers,
    connected,
    print_table,
    register_tasks,
    run_async,
    say,
    worker_env,
)
from relay.devtools.redis_server import free_port
from support.payloads import finished_grid, new_ids

FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.access(found, os.X_OK):
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def record(pid: int, seconds: float, out: str) -> None:
    subprocess.run(
        [py_spy(), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--output", out, "--nonblocking"],
        check=True, capture_output=True, timeout=seconds + 60,
    )  # fmt: skip


def short(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['name']} ({path})"


def analyze(title: str, raw_path: str, top: int = 25) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(raw_path) as handle:
        for line in handle:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [short(f) for f in stack.split(";") if f and not f.startswith("process ")]
            frames = [f for f in frames if not f.startswith("thread ")]
            if not frames:
                continue
            total += count
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    print(f"\n# {title}: {total} CPU samples")
    print_table(
        f"{title}: self time (the frame on CPU)",
        ["function (file)", "% of samples"],
        [[name, f"{100 * n / total:.1f}"] for name, n in own.most_common(top)],
    )
    print_table(
        f"{title}: inclusive time (anywhere on the stack)",
        ["function (file)", "% of samples"],
        [[name, f"{100 * n / total:.1f}"] for name, n in inclusive.most_common(top + 15)],
    )


def profile_polling(seconds: float) -> None:
    with Stack() as stack:
        redis = stack.redis()
        _up, url = stack.upstream()

        async def setup() -> None:
            async with connected(redis.url) as client:
                await register_tasks(client, new_ids(10_000), running=True)

        run_async(setup())
        worker = stack.spawn(
            "worker", ["-m", "bench._poll_worker"], worker_env(redis.url, url, **HOT_POLLING)
        )
        time.sleep(3)
        say(f"py-spy on the polling worker for {seconds:g} s")
        out = f"{stack.dir}/polling.raw"
        record(worker.pid, seconds, out)
        analyze("polling worker, 10,000 tracked", out)


def profile_delivery(seconds: float) -> None:
    with Stack() as stack:
        redis = stack.redis()
        _rec, rurl = stack.receiver()
        n = 40_000  # enough to stay busy for the whole recording

        async def setup() -> None:
            async with connected(redis.url) as client:
                stored = await register_tasks(
                    client, new_ids(n), webhook_url=rurl + "/hooks/relay", metadata={"order": 1}
                )
                await apply_answers(client, stored, finished_grid)

        say(f"creating {n} pending deliveries")
        run_async(setup())
        worker = stack.spawn(
            "worker", ["-m", "bench._poll_worker"], worker_env(redis.url, "http://127.0.0.1:9")
        )
        time.sleep(1)
        say(f"py-spy on the delivering worker for {seconds:g} s")
        out = f"{stack.dir}/delivery.raw"
        record(worker.pid, seconds, out)
        analyze("delivering worker", out)


def profile_api(seconds: float) -> None:
    with Stack() as stack:
        redis = stack.redis()
        port = free_port()
        server = stack.spawn(
            "relay-api",
            ["-m", "relay", "api", "--host", HOST, "--port", str(port)],
            worker_env(redis.url, "http://127.0.0.1:9"),
            ready=None,
        )
        from bench.api import CLIENT_KEY, wait_healthy

        url = f"http://{HOST}:{port}"
        wait_healthy(url)
        for i in range(2):
            stack.spawn(
                f"loadgen{i}",
                ["-m", "bench._loadgen", "--url", url + "/v1/tasks", "--connections", "32",
                 "--warmup", "1", "--duration", str(seconds + 3), "--key", CLIENT_KEY,
                 "--out", f"{stack.dir}/loadgen{i}.json"],
            )  # fmt: skip
        time.sleep(2)
        say(f"py-spy on relay api for {seconds:g} s")
        out = f"{stack.dir}/api.raw"
        record(server.pid, seconds, out)
        analyze("relay api under 64 connections", out)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_hotspots", description=__doc__)
    parser.add_argument("--only", choices=["polling", "delivery", "api"], action="append")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    chosen = args.only or ["polling", "delivery", "api"]
    for name in chosen:
        {"polling": profile_polling, "delivery": profile_delivery, "api": profile_api}[name](
            args.seconds
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
