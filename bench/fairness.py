"""Fair share of the upstream rate: a small tenant beside a big backlog.

    .venv/bin/python -m bench.fairness [--tiny]

One worker process (bench/_poll_worker.py: the product's own startup) at the
default RELAY_UPSTREAM_RATE (50/s) and default poll intervals polls the
stand-in upstream (bench/_servers.py with `--log-polls`: every call's time
per task id), which answers `processing 50%` to all, so every task stays
tracked. Tasks are registered in Redis as the API does.

Tenant `tenant-a` registers 5,000 tasks, all due at once, about 100 s of the
rate. Once the worker has been polling them for 2 s, tenant `tenant-b`
registers 10. Figure: for each of B's tasks, from the start of its
registration to its first call at the stand-in. Target: every one within
1 s.

Bare limits, same run: B's tasks polled at once (0 s), and what a
first-come-first-served queue would give: the tasks due ahead of B's when B
registered (due now, summed over every shard's queue: all A's) over A's
measured call rate. Also A's call rate while B's tasks are polled, against
RELAY_UPSTREAM_RATE, and the most calls the stand-in saw in any 1 s: the
shared limit still holds (at most the rate plus the token bucket's burst). The due tasks per tenant
as `relay_tenant_due_tasks` shows them at B's registration are printed too.

`--tiny`: 500 A tasks, 5 B tasks, a 1 s head start, a 3 s window.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families

from bench._common import (
    Result,
    Stack,
    connected,
    fmt,
    http_json,
    print_results,
    print_table,
    ratio_note,
    register_tasks,
    run_async,
    say,
    standard_args,
    target_note,
    wait_until,
    worker_env,
)
from relay import metrics
from relay.settings import load_settings
from relay.store import stats
from relay.store.polls import PollQueue
from support.payloads import new_ids
from support.stats import percentile

FULL = {"a_tasks": 5_000, "b_tasks": 10, "head_start": 2.0, "window": 10.0}
TINY = {"a_tasks": 500, "b_tasks": 5, "head_start": 1.0, "window": 3.0}
TENANT_A, TENANT_B = "tenant-a", "tenant-b"
TARGET = 1.0  # seconds from registration to a first poll, for each of B's tasks
# B's tasks are never polled when fair share is off: the run waits this long at most.
B_TIMEOUT = 60.0


# --- the pure parts ---------------------------------------------------------------------------


def first_poll_delays(
    polls: Mapping[str, Sequence[float]], ids: Iterable[str], registered_at: float
) -> list[float]:
    """From `registered_at` to each task's first call (inf for a task never called)."""
    return [min(polls[t]) - registered_at if polls.get(t) else math.inf for t in ids]


def calls_between(
    polls: Mapping[str, Sequence[float]], ids: Iterable[str], start: float, end: float
) -> int:
    """Calls made for `ids` in [start, end)."""
    return sum(1 for t in ids for at in polls.get(t, ()) if start <= at < end)


def most_in_window(times: Iterable[float], width: float) -> int:
    """The most calls in any span [t, t + width) that starts at a call."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, at + width, lo=i) - i for i, at in enumerate(ordered)),
        default=0,
    )


def queue_wait(ahead: int, rate: float) -> float:
    """How long a first-come-first-served queue keeps a new task behind `ahead` others."""
    return ahead / rate if rate > 0 else math.inf


def due_per_tenant(exposition: str) -> dict[str, float]:
    """`relay_tenant_due_tasks` per tenant from a /metrics text."""
    return {
        sample.labels["tenant"]: sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "relay_tenant_due_tasks"
        for sample in family.samples
    }


# --- the run ----------------------------------------------------------------------------------


async def _register(redis_url: str, ids: list[str], tenant: str) -> None:
    async with connected(redis_url) as client:
        await register_tasks(client, ids, tenant=tenant)


async def _queue_ahead(redis_url: str) -> tuple[int, dict[str, float]]:
    """Tasks due now (the queue a new task would join the end of), and the metric's view."""
    async with connected(redis_url) as client:
        ahead = (await stats.snapshot(client, time.time())).due
        exposition = (await metrics.render(client)).decode()
    return ahead, due_per_tenant(exposition)


async def _burst(redis_url: str, rate: float) -> float:
    async with connected(redis_url) as client:
        return PollQueue(client, rate=rate, retention=1).burst


def main(argv: list[str] | None = None) -> int:
    args = standard_args(__doc__).parse_args(argv)
    cfg = TINY if args.tiny else FULL
    a_count, b_count = int(cfg["a_tasks"]), int(cfg["b_tasks"])
    head_start, window = cfg["head_start"], cfg["window"]
    a_ids, b_ids = new_ids(a_count), new_ids(b_count)
    with Stack() as stack:
        redis = stack.redis()
        _upstream, upstream_url = stack.upstream("--log-polls")
        env = worker_env(redis.url, upstream_url)
        rate = load_settings(env).upstream_rate
        burst = run_async(_burst(redis.url, rate))
        say(f"{a_count} tasks for {TENANT_A}, all due at once")
        run_async(_register(redis.url, a_ids, TENANT_A))
        worker = stack.spawn("worker", ["-m", "bench._poll_worker"], env)
        if not wait_until(lambda: http_json(upstream_url + "/stats")["calls"] > 0, 30):
            raise RuntimeError(f"the worker never polled:\n{worker.log_tail()}")
        time.sleep(head_start)
        ahead, metric_due = run_async(_queue_ahead(redis.url))
        say(f"{b_count} tasks for {TENANT_B}, {ahead} due ahead of them")
        registered_at = time.time()
        run_async(_register(redis.url, b_ids, TENANT_B))

        def b_polled() -> bool:
            polls = http_json(upstream_url + "/polls")
            return all(polls.get(t) for t in b_ids)

        wait_until(b_polled, B_TIMEOUT, 0.05)
        time.sleep(max(0.0, registered_at + window - time.time()))
        polls: dict[str, list[float]] = http_json(upstream_url + "/polls")
        if not worker.alive():
            raise RuntimeError(f"the worker died:\n{worker.log_tail()}")
        worker.stop()

    delays = first_poll_delays(polls, b_ids, registered_at)
    end = registered_at + window
    all_times = [at for times in polls.values() for at in times if at < end]
    started = min(all_times)
    a_rate = calls_between(polls, a_ids, started, end) / (end - started)
    a_rate_beside_b = calls_between(polls, a_ids, registered_at, end) / window
    peak = most_in_window(all_times, 1.0)
    fcfs = queue_wait(ahead, a_rate)
    worst = max(delays)

    print_table(
        f"{TENANT_B}'s {b_count} tasks registered beside {ahead:,} of {TENANT_A}'s due "
        f"(RELAY_UPSTREAM_RATE {rate:g}/s, default poll intervals)",
        ["queue", "p50 to first poll s", "max to first poll s"],
        [
            ["fair share (measured)", percentile(delays, 50), worst],
            ["polled at once (bare limit)", 0.0, 0.0],
            [f"first come, first served ({ahead:,} ahead / {a_rate:.1f} calls/s)", fcfs, fcfs],
        ],
    )
    print_table(
        "The shared rate limit",
        ["figure", "value"],
        [
            ["RELAY_UPSTREAM_RATE", rate],
            ["burst (token bucket)", burst],
            ["all calls/s, whole run", len(all_times) / (end - started)],
            [f"{TENANT_A} calls/s, whole run", a_rate],
            [f"{TENANT_A} calls/s, {window:g} s from {TENANT_B}'s registration", a_rate_beside_b],
            ["most calls in any 1 s (all tenants)", peak],
            ["limit: rate + burst", rate + burst],
        ],
    )
    print_table(
        f"relay_tenant_due_tasks at {TENANT_B}'s registration",
        ["tenant", "due tasks"],
        sorted(metric_due.items()) or [["(none)", "-"]],
    )
    print_results(
        [
            Result(
                "fairness_small_tenant_first_poll_max",
                worst,
                "s",
                f"first come, first served {fmt(fcfs)} s; "
                + target_note(worst <= TARGET, f"every one <= {TARGET:g} s"),
            ),
            Result(
                "fairness_small_tenant_first_poll_p50",
                percentile(delays, 50),
                "s",
                "bare limit 0 s: polled at once",
            ),
            Result(
                "fairness_first_come_first_served_wait",
                fcfs,
                "s",
                f"{ahead:,} due ahead / {TENANT_A}'s {a_rate:.1f} calls/s",
            ),
            Result(
                "fairness_big_tenant_calls_per_s",
                a_rate,
                "calls/s",
                ratio_note(a_rate, rate, "RELAY_UPSTREAM_RATE"),
            ),
            Result(
                "fairness_most_calls_in_1s",
                peak,
                "calls",
                target_note(peak <= rate + burst, f"<= rate + burst = {rate + burst:g}"),
            ),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
