"""Recovery: how long a killed worker's claimed tasks wait before another worker polls them.

    .venv/bin/python -m bench.recovery [--tiny]

Two real `relay worker` processes (`python -m relay worker`, as deployed)
poll 5,000 tasks (each in the steady `processing 50%` state, polled every
RELAY_POLL_MAX_INTERVAL = 2 s, first polls spread over 2 s, so polls
run all the time) against a stand-in that takes 50 ms per answer (as a
real upstream takes time: so each worker always has calls in flight, and
the kill always strands some) and logs every poll's time per task. After a warm-up one worker is
killed with SIGKILL. For every task: the first poll after the kill minus
the kill time (`wait`), and the gap between the polls around the kill minus
the task's own interval before it (`excess`): the killed worker's claims
show as the tasks with a large excess; they come back when their lease
(RELAY_UPSTREAM_TIMEOUT + 2 s) ends.

Measured with the default RELAY_UPSTREAM_TIMEOUT (10 s: a 12 s lease) and
shrunk (1 s: a 3 s lease); `--tiny` runs the shrunk case only, small.

Target: every task polled again < 15 s after the kill, with default settings.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import statistics
import time

from bench._common import (
    Result,
    Stack,
    connected,
    http_json,
    print_results,
    print_table,
    register_tasks,
    run_async,
    say,
    standard_args,
    target_note,
    tcp_ports_to,
    wait_for_log,
    worker_env,
)
from support.payloads import new_ids
from support.stats import percentile

FULL = {"tasks": 5_000, "warmup": 8.0, "after": 8.0, "cases": ("default", "shrunk")}
TINY = {"tasks": 200, "warmup": 2.5, "after": 2.0, "cases": ("shrunk",)}
CASES = {
    "default": {},  # RELAY_UPSTREAM_TIMEOUT 10: lease 12 s
    "shrunk": {"RELAY_UPSTREAM_TIMEOUT": "1"},  # lease 3 s
}
LOAD = {
    "RELAY_POLL_MIN_INTERVAL": "0.5",
    "RELAY_POLL_MAX_INTERVAL": "2",  # INTERVAL
    "RELAY_UPSTREAM_RATE": "100000",
}
INTERVAL = 2.0  # RELAY_POLL_MAX_INTERVAL: a steady task is polled this often
HOLD = 0.05  # seconds the stand-in takes per answer: a worker always has calls in flight
STRANDED = 1.0  # seconds of excess that mark a task as one the killed worker held


def run_case(name: str, tasks: int, warmup: float, after: float) -> dict[str, float]:
    timeout = float(CASES[name].get("RELAY_UPSTREAM_TIMEOUT", "10"))
    lease = timeout + 2
    with Stack() as stack:
        redis = stack.redis()
        _upstream, url = stack.upstream("--delay", str(HOLD), "--log-polls")

        async def setup() -> None:
            async with connected(redis.url) as client:
                # Spread the first polls over one interval, so polls run all the time
                # rather than in one burst per interval, and a kill always strands claims.
                rng = random.Random(7)
                await register_tasks(
                    client,
                    new_ids(tasks),
                    running=True,
                    first_poll=lambda _task_id: rng.random() * INTERVAL,
                )

        run_async(setup())
        env = worker_env(redis.url, url, **LOAD, **CASES[name])
        workers = [
            stack.spawn(f"relay-worker{i}", ["-m", "relay", "worker"], env, ready=None)
            for i in range(2)
        ]
        for worker in workers:
            wait_for_log(worker, "worker started")
        say(
            f"{name}: lease {lease:g} s; two workers polling {tasks} tasks, "
            f"killing one in {warmup:g} s"
        )
        time.sleep(warmup)
        # Kill at a moment the victim has calls in flight (its claims are then stranded).
        upstream_port = int(url.rsplit(":", 1)[1])
        in_flight = 0
        give_up = time.monotonic() + 10
        while time.monotonic() < give_up:
            ports = tcp_ports_to(workers[0].pid, upstream_port)
            counts = http_json(url + "/stats")["in_flight_ports"]
            in_flight = sum(counts.get(str(port), 0) for port in ports)
            if in_flight >= min(20, tasks // 50):
                break
            time.sleep(0.002)
        killed_at = time.time()
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].popen.wait()
        time.sleep(lease + after)
        polls: dict[str, list[float]] = http_json(url + "/polls", timeout=60)
        if not workers[1].alive():
            raise RuntimeError(f"the surviving worker died:\n{workers[1].log_tail()}")
        workers[1].stop()

    waits: list[float] = []
    excess: list[float] = []
    never = 0
    for times in polls.values():
        times.sort()
        before = [t for t in times if t < killed_at]
        later = [t for t in times if t >= killed_at]
        if not later:
            never += 1
            continue
        waits.append(later[0] - killed_at)
        if len(before) >= 2:
            recent = [b - a for a, b in itertools.pairwise(before)][-5:]
            excess.append(later[0] - before[-1] - statistics.median(recent))
    stranded = [e for e in excess if e > STRANDED]
    every = sorted(t for times in polls.values() for t in times)
    before_rate = sum(1 for t in every if killed_at - 3 <= t < killed_at) / 3
    after_span = (killed_at + 1, killed_at + lease - 1)
    after_rate = sum(1 for t in every if after_span[0] <= t < after_span[1]) / (lease - 2)
    return {
        "timeout": timeout,
        "lease": lease,
        "tasks": float(len(polls)),
        "never": float(never),
        "wait_max": max(waits, default=float("nan")),
        "wait_p50": percentile(waits, 50),
        "wait_p99": percentile(waits, 99),
        "excess_max": max(excess, default=float("nan")),
        "stranded": float(len(stranded)),
        "in_flight": float(in_flight),
        "before_rate": before_rate,
        "after_rate": after_rate,
    }


def main(argv: list[str] | None = None) -> int:
    args = standard_args(__doc__).parse_args(argv)
    cfg = TINY if args.tiny else FULL
    tasks = int(cfg["tasks"])  # type: ignore[call-overload]
    figures = {
        name: run_case(name, tasks, float(cfg["warmup"]), float(cfg["after"]))  # type: ignore[arg-type]
        for name in cfg["cases"]  # type: ignore[attr-defined]
    }
    print_table(
        f"Recovery: two workers, {tasks:,} tasks polled every 2 s, one killed with SIGKILL",
        [
            "case",
            "lease s",
            "victim's calls in flight at kill",
            "tasks stranded (excess > 1 s)",
            "wait after kill p50 s",
            "p99 s",
            "max s (all polled again)",
            "max excess s",
            "never polled again",
            "calls/s before kill",
            "calls/s after (1 worker)",
        ],
        [
            [
                f"{name} (RELAY_UPSTREAM_TIMEOUT {f['timeout']:g})",
                f["lease"],
                int(f["in_flight"]),
                int(f["stranded"]),
                f["wait_p50"],
                f["wait_p99"],
                f["wait_max"],
                f["excess_max"],
                int(f["never"]),
                f["before_rate"],
                f["after_rate"],
            ]
            for name, f in figures.items()
        ],
    )
    results = []
    for name, f in figures.items():
        note = f"lease {f['lease']:g} s; {int(f['stranded'])} tasks stranded"
        if name == "default":
            note += "; " + target_note(f["wait_max"] < 15 and not f["never"], "< 15 s")
        results.append(Result(f"recovery_all_polled_again_{name}", f["wait_max"], "s", note))
    print_results(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
