"""Polling throughput: one worker's poll loop against an instant stand-in upstream.

    .venv/bin/python -m bench.polling [--tiny] [--only-cluster]

A stand-in upstream (aiohttp.web, its own process) answers every fetch at
once with `processing 50%`. One worker process (bench/_poll_worker.py: the
product's own startup, Poller and AiohttpTransport) tracks 1,000, 10,000 and
100,000 tasks on one Redis, and 100,000 on a Redis Cluster of three
primaries (no replicas; RELAY_REDIS_URL=redis+cluster://..., the relay's own
cluster client). The tasks are registered through `Registry.register`, each
then put in the state a `processing 50%` poll leaves, so every poll is the
same steady-state poll; the poll interval is 1..10 ms and the shared rate
1e9/s, so every task is always due and the loop is the bound. Calls are
counted at the stand-in over a window after a warm-up; CPU is read from
/proc for the worker, Redis (on the cluster: the three primaries' processes,
summed) and the stand-in.

Each size has a Redis of its own, so 1,000 and 100,000 are each measured
twice, interleaved (1k, 10k, 100k, cluster, 1k, 100k, cluster), and their
figures are the means: drift in what else the machine runs weighs on both
alike. The cluster is measured twice too, each run right after one of the
one-Redis 100,000 runs. `--only-cluster` runs just those four (and the bare
client), for a quick look; `--tiny` runs it all at 1,000..2,000 tasks (the
cluster at 2,000).

The bare limit, measured in the same run (before and after; the higher
counts): one plain aiohttp client process, 200 concurrent keep-alive
requests, hammering the same stand-in.

Targets: calls/s >= 0.6x bare at 100,000 tracked (issue 12); worker CPU per poll at
100,000 within 1.2x of 1,000; worker + Redis CPU per poll on the cluster
within 1.2x of that on one Redis, both at 100,000 tracked
(`polling_cluster_cost_per_poll_ratio`; the cluster's calls/s is printed as
a ratio to bare and to one Redis). Also the transports compared at 10,000
tracked: aiohttp (the product's), httpx, httpx over aiohttp.
"""

from __future__ import annotations

import math
import statistics

from bench._common import (
    HOT_POLLING,
    Result,
    Stack,
    Window,
    connected_store,
    fmt,
    measure_calls,
    print_results,
    print_table,
    ratio_note,
    register_tasks,
    run_async,
    say,
    size_label,
    standard_args,
    target_note,
    worker_env,
)
from relay.devtools.redis_cluster import ClusterServers
from support.payloads import new_ids

FULL = {"sizes": (1_000, 10_000, 100_000), "warmup": 3.0, "window": 10.0}
TINY = {"sizes": (1_000, 1_500, 2_000), "warmup": 0.7, "window": 1.2}
TRANSPORTS = ("aiohttp", "httpx", "httpx-aiohttp")
CLUSTER_PRIMARIES = 3


def run_worker(
    stack: Stack,
    env: dict[str, str],
    upstream: tuple[int, str],
    redis_pids: list[int],
    transport: str,
    warmup: float,
    window: float,
) -> Window:
    upstream_pid, upstream_url = upstream
    worker = stack.spawn(
        f"worker-{transport}", ["-m", "bench._poll_worker", "--transport", transport], env
    )
    try:
        measured = measure_calls(
            upstream_url,
            {"worker": [worker.pid], "redis": redis_pids, "upstream": [upstream_pid]},
            warmup,
            window,
        )
        if not worker.alive():
            raise RuntimeError(f"the worker died:\n{worker.log_tail()}")
        if measured.calls == 0:
            # Counted as a miss (NaN); the log says why it stood still (seen once on a cluster).
            say(f"the worker made no calls in the window; its log:\n{worker.log_tail()}")
    finally:
        worker.stop(timeout=5)  # httpx can take its whole timeout to drain
    if measured.refused:
        raise RuntimeError("the stand-in refused the worker's key")
    return measured


def run_bare(stack: Stack, upstream: tuple[int, str], warmup: float, window: float) -> Window:
    upstream_pid, upstream_url = upstream
    client = stack.spawn(
        "bare",
        [
            "-m",
            "bench._bare_client",
            "--url",
            upstream_url + "/api/v1/fetch",
            "--kind",
            "fetch",
            "--duration",
            str(warmup + window + 10),
        ],
    )
    try:
        return measure_calls(
            upstream_url, {"client": [client.pid], "upstream": [upstream_pid]}, warmup, window
        )
    finally:
        client.stop()


def start_cluster(stack: Stack) -> ClusterServers:
    """Three primaries, no replicas (nothing fails over here), stopped with the stack."""
    # Redis' default node timeout rather than the tests' 1 s: on two busy cores a node
    # slow to answer the bus must not be marked failing mid-run.
    cluster = ClusterServers(primaries=CLUSTER_PRIMARIES, replicas=0, node_timeout_ms=15_000)
    stack.callback(cluster.cleanup)
    return cluster.start()


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__)
    parser.add_argument(
        "--only-cluster",
        action="store_true",
        help="only the largest size, on one Redis and on the cluster (and the bare client)",
    )
    args = parser.parse_args(argv)
    cfg = TINY if args.tiny else FULL
    all_sizes: tuple[int, ...] = cfg["sizes"]  # type: ignore[assignment]
    warmup, window = float(cfg["warmup"]), float(cfg["window"])  # type: ignore[arg-type]
    small, middle, large = all_sizes
    sizes = (large,) if args.only_cluster else all_sizes
    with Stack() as stack:
        up_child, up_url = stack.upstream()
        upstream = (up_child.pid, up_url)

        async def register(url: str, count: int) -> None:
            async with connected_store(url) as client:
                await register_tasks(client, new_ids(count), running=True)

        # One Redis per size, so the smallest and largest can be measured twice, interleaved:
        # drift in what else the machine runs then weighs on both alike.
        servers = {}
        for size in sizes:
            servers[size] = stack.redis()
            say(f"registering {size} tasks")
            run_async(register(servers[size].url, size))
        say(f"starting a Redis Cluster of {CLUSTER_PRIMARIES} primaries")
        cluster = start_cluster(stack)
        say(f"registering {large} tasks on the cluster")
        run_async(register(cluster.url, large))
        primaries = [server.process.pid for server in cluster.servers if server.process]

        def poll(size: int, transport: str = "aiohttp") -> Window:
            server = servers[size]
            assert server.process is not None
            say(f"polling {size} tracked ({transport})")
            env = worker_env(server.url, up_url, **HOT_POLLING)
            return run_worker(stack, env, upstream, [server.process.pid], transport, warmup, window)

        def poll_cluster() -> Window:
            say(f"polling {large} tracked on the cluster")
            env = worker_env(cluster.url, up_url, **HOT_POLLING)
            return run_worker(stack, env, upstream, primaries, "aiohttp", warmup, window)

        say("bare client (first)")
        bare_runs = [run_bare(stack, upstream, warmup, window)]
        transports: dict[str, Window] = {}
        runs: list[tuple[int, Window]] = []
        if not args.only_cluster:
            runs += [(small, poll(small)), (middle, poll(middle))]
            transports["aiohttp"] = runs[-1][1]
            for transport in TRANSPORTS[1:]:
                transports[transport] = poll(middle, transport)
        # The cluster beside the one Redis of its size, twice: each run next to one of theirs.
        runs.append((large, poll(large)))
        cluster_runs = [poll_cluster()]
        if not args.only_cluster:
            runs.append((small, poll(small)))
        runs.append((large, poll(large)))
        cluster_runs.append(poll_cluster())
        say("bare client (last)")
        bare_runs.append(run_bare(stack, upstream, warmup, window))

    bare = max(bare_runs, key=lambda w: w.rate)
    by_size: dict[int, list[Window]] = {size: [w for s, w in runs if s == size] for size in sizes}

    def mean_rate(size: int) -> float:
        return statistics.fmean(w.rate for w in by_size[size])

    def mean_cpu(size: int) -> float:
        return statistics.fmean(w.cpu_us_per_call["worker"] for w in by_size[size])

    def total(w: Window) -> float:
        return w.cpu_us_per_call["worker"] + w.cpu_us_per_call["redis"]

    def versus_smallest(w: Window) -> str:
        if small not in by_size:
            return "-"
        return f"{w.cpu_us_per_call['worker'] / mean_cpu(small):.2f}x"

    single_cost = statistics.fmean(total(w) for w in by_size[large])
    cluster_cost = statistics.fmean(total(w) for w in cluster_runs)
    cluster_rate = statistics.fmean(w.rate for w in cluster_runs)
    cluster_ratio = cluster_cost / single_cost
    print_table(
        "Polling throughput: one worker, instant stand-in upstream, concurrency 200",
        [
            "tracked",
            "calls/s",
            "x bare",
            "worker us/poll",
            "redis us/poll",
            "worker+redis us/poll",
            "stand-in us/call",
            "cost vs smallest (mean)",
            "max in flight per task",
        ],
        [
            [
                f"{size:,} (run {n})",
                w.rate,
                f"{w.rate / bare.rate:.2f}",
                w.cpu_us_per_call["worker"],
                w.cpu_us_per_call["redis"],
                total(w),
                w.cpu_us_per_call["upstream"],
                versus_smallest(w),
                w.max_concurrency,
            ]
            for size in sizes
            for n, w in enumerate(by_size[size], 1)
        ]
        + [
            [
                f"cluster, {CLUSTER_PRIMARIES} primaries, {large:,} (run {n})",
                w.rate,
                f"{w.rate / bare.rate:.2f}",
                w.cpu_us_per_call["worker"],
                f"{fmt(w.cpu_us_per_call['redis'])} (sum)",
                total(w),
                w.cpu_us_per_call["upstream"],
                versus_smallest(w),
                w.max_concurrency,
            ]
            for n, w in enumerate(cluster_runs, 1)
        ]
        + [
            [
                f"bare client ({i})",
                b.rate,
                "1.00" if b is bare else f"{b.rate / bare.rate:.2f}",
                f"{b.cpu_us_per_call['client']:.1f} (client)",
                "-",
                "-",
                b.cpu_us_per_call["upstream"],
                "-",
                "-",
            ]
            for i, b in enumerate(bare_runs, 1)
        ],
    )
    if transports:
        print_table(
            f"Transports in the real poll loop, {middle:,} tracked",
            ["transport", "calls/s", "x bare", "x aiohttp", "worker us/poll"],
            [
                [
                    name,
                    w.rate,
                    f"{w.rate / bare.rate:.2f}",
                    f"{w.rate / transports['aiohttp'].rate:.2f}",
                    w.cpu_us_per_call["worker"],
                ]
                for name, w in transports.items()
            ],
        )

    results: list[Result] = []
    for size in sizes:
        rate = mean_rate(size)
        note = ratio_note(rate, bare.rate)
        if size == large:
            note += "; " + target_note(rate / bare.rate >= 0.6, ">= 0.6x bare")
        results.append(Result(f"polling_calls_per_s_{size_label(size)}", rate, "calls/s", note))
    for size in sizes:
        per_poll = mean_cpu(size)
        results.append(
            Result(
                f"polling_worker_cpu_per_poll_{size_label(size)}",
                per_poll,
                "us/poll",
                ratio_note(per_poll, bare.cpu_us_per_call["client"], "bare client's CPU per call"),
            )
        )
    if small in by_size:
        cost_growth = mean_cpu(large) / mean_cpu(small)
        results.append(
            Result(
                f"polling_cost_per_poll_{size_label(large)}_vs_{size_label(small)}",
                cost_growth,
                "x",
                target_note(cost_growth <= 1.2 or math.isnan(cost_growth), "<= 1.2x"),
            )
        )
    results += [
        Result(
            f"polling_cluster_calls_per_s_{size_label(large)}",
            cluster_rate,
            "calls/s",
            ratio_note(cluster_rate, bare.rate)
            + "; "
            + ratio_note(cluster_rate, mean_rate(large), "one Redis"),
        ),
        Result(
            f"polling_cluster_cpu_per_poll_{size_label(large)}",
            cluster_cost,
            "us/poll",
            f"worker + {CLUSTER_PRIMARIES} primaries; one Redis: {fmt(single_cost)} us/poll",
        ),
        Result(
            "polling_cluster_cost_per_poll_ratio",
            cluster_ratio,
            "x",
            ratio_note(cluster_cost, single_cost, "one Redis")
            + "; "
            # NaN (the cluster's worker made no polls) is a miss.
            + target_note(cluster_ratio <= 1.2, "<= 1.2x"),
        ),
    ]
    for name, w in transports.items():
        results.append(
            Result(
                f"polling_transport_{name.replace('-', '_')}_calls_per_s",
                w.rate,
                "calls/s",
                ratio_note(w.rate, bare.rate),
            )
        )
    results.append(Result("polling_bare_calls_per_s", bare.rate, "calls/s", "1.00x bare"))
    print_results(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
