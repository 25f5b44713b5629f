"""Scale-out: two worker processes on one Redis, against the same instant stand-in.

    .venv/bin/python -m bench.scaleout [--tiny]

As bench.polling (10,000 tracked tasks, every task always due), first with
one worker process, then with two, in the same run. The stand-in holds each
answer 1 ms so requests really overlap in time, and tracks the requests in
flight per task id: its maximum must be 1 (no task polled twice at once).
The bare limit: two plain aiohttp client processes (200 concurrent
keep-alive requests each) against the same stand-in.
"""

from __future__ import annotations

from bench._common import (
    HOT_POLLING,
    Result,
    Stack,
    Window,
    connected,
    measure_calls,
    print_results,
    print_table,
    ratio_note,
    register_tasks,
    run_async,
    say,
    standard_args,
    target_note,
    worker_env,
)
from support.payloads import new_ids

FULL = {"tasks": 10_000, "warmup": 3.0, "window": 10.0}
TINY = {"tasks": 1_000, "warmup": 0.7, "window": 1.2}
HOLD = "0.001"  # seconds the stand-in holds each answer


def main(argv: list[str] | None = None) -> int:
    args = standard_args(__doc__).parse_args(argv)
    cfg = TINY if args.tiny else FULL
    tasks, warmup, window = int(cfg["tasks"]), float(cfg["warmup"]), float(cfg["window"])
    runs: dict[str, Window] = {}
    with Stack() as stack:
        redis = stack.redis()
        assert redis.process is not None
        upstream, url = stack.upstream("--delay", HOLD)
        env = worker_env(redis.url, url, **HOT_POLLING)

        async def setup() -> None:
            async with connected(redis.url) as client:
                await register_tasks(client, new_ids(tasks), running=True)

        say(f"registering {tasks} tasks")
        run_async(setup())
        for count in (1, 2):
            say(f"{count} worker process(es)")
            workers = [
                stack.spawn(f"worker{i}", ["-m", "bench._poll_worker"], env) for i in range(count)
            ]
            try:
                runs[f"{count} worker{'s' if count > 1 else ''}"] = measure_calls(
                    url,
                    {
                        "workers": [w.pid for w in workers],
                        "redis": [redis.process.pid],
                        "upstream": [upstream.pid],
                    },
                    warmup,
                    window,
                )
                dead = [w for w in workers if not w.alive()]
                if dead:
                    raise RuntimeError(f"a worker died:\n{dead[0].log_tail()}")
            finally:
                for w in workers:
                    w.stop(timeout=5)
        say("bare: two client processes")
        clients = [
            stack.spawn(
                f"bare{i}",
                [
                    "-m",
                    "bench._bare_client",
                    "--url",
                    url + "/api/v1/fetch",
                    "--kind",
                    "fetch",
                    "--duration",
                    str(warmup + window + 10),
                ],
            )
            for i in range(2)
        ]
        try:
            bare = measure_calls(
                url,
                {"workers": [c.pid for c in clients], "redis": [], "upstream": [upstream.pid]},
                warmup,
                window,
            )
        finally:
            for c in clients:
                c.stop()
        # The maximum per task over the whole run (the bare clients reuse 1,000 ids of their own).
        max_concurrency = runs["2 workers"].max_concurrency

    one, two = runs["1 worker"], runs["2 workers"]
    print_table(
        f"Scale-out: {tasks:,} tracked, stand-in holds each answer {float(HOLD) * 1000:g} ms",
        [
            "run",
            "calls/s",
            "x bare (2 clients)",
            "x 1 worker",
            "worker us/poll",
            "redis us/poll",
            "max in flight per task",
            "overlapping requests",
        ],
        [
            [
                name,
                w.rate,
                f"{w.rate / bare.rate:.2f}",
                f"{w.rate / one.rate:.2f}",
                w.cpu_us_per_call["workers"],
                w.cpu_us_per_call["redis"],
                w.max_concurrency,
                w.overlaps,
            ]
            for name, w in runs.items()
        ]
        + [
            [
                "bare, 2 client processes",
                bare.rate,
                "1.00",
                "-",
                f"{bare.cpu_us_per_call['workers']:.1f} (clients)",
                "-",
                "-",
                "-",
            ]
        ],
    )
    print_results(
        [
            Result(
                "scaleout_calls_per_s_2_workers",
                two.rate,
                "calls/s",
                ratio_note(two.rate, bare.rate, "bare (2 clients)"),
            ),
            Result(
                "scaleout_speedup_2_vs_1_worker",
                two.rate / one.rate if one.rate else 0.0,
                "x",
                f"{one.rate:.0f} calls/s with 1 worker",
            ),
            Result(
                "scaleout_max_concurrency_per_task",
                float(max_concurrency),
                "requests",
                target_note(max_concurrency <= 1, "== 1"),
            ),
            Result("scaleout_bare_calls_per_s", bare.rate, "calls/s", "1.00x bare (2 clients)"),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
