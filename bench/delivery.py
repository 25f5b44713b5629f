"""Delivery throughput: one worker's Deliverer sending pending webhooks to a fast receiver.

    .venv/bin/python -m bench.delivery [--tiny]

N tasks are registered (the store's `Registry.register`, as the API does) with a
webhook URL on a local receiver (aiohttp.web, its own process, answering
204), then made final through `PollQueue.apply` with the step a `finished`
answer (a four-image grid) makes: N `task.succeeded` deliveries pending.
Then one worker process starts (bench/_poll_worker.py: the product's own
startup, so the Deliverer with its WebhookSender over AiohttpTransport and
AddressGuard(allow_private=True), concurrency 200; its Poller idles) and
sends them all. Rate: deliveries arriving at the receiver per second between
5% and 95% of N; then every delivery must be recorded as delivered in Redis.

The bare limit, same run: one plain aiohttp client process, 200 concurrent
keep-alive POSTs of a webhook-sized signed body to the same receiver.

Targets: >= 1,000 deliveries/s and >= 0.3x bare.
"""

from __future__ import annotations

import time

from bench._common import (
    Result,
    Stack,
    apply_answers,
    connected,
    cpu_seconds,
    deliveries_due,
    http_json,
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
from support.payloads import finished_grid, new_ids

FULL = {"tasks": 20_000, "warmup": 2.0, "window": 10.0, "limit": 120.0}
TINY = {"tasks": 500, "warmup": 0.5, "window": 1.0, "limit": 30.0}
METADATA = {"order": 1234, "customer": "cus_0123456789"}


def main(argv: list[str] | None = None) -> int:
    args = standard_args(__doc__).parse_args(argv)
    cfg = TINY if args.tiny else FULL
    n, warmup, window, limit = int(cfg["tasks"]), cfg["warmup"], cfg["window"], cfg["limit"]
    with Stack() as stack:
        redis = stack.redis()
        assert redis.process is not None
        _receiver, rurl = stack.receiver()
        # The poller has nothing due; its upstream is never called.
        env = worker_env(redis.url, "http://127.0.0.1:9")

        async def prepare() -> int:
            async with connected(redis.url) as client:
                stored = await register_tasks(
                    client, new_ids(n), webhook_url=rurl + "/hooks/relay", metadata=METADATA
                )
                await apply_answers(client, stored, finished_grid)
                return await deliveries_due(client)

        say(f"creating {n} pending deliveries")
        pending = run_async(prepare())
        if pending != n:
            raise RuntimeError(f"{pending} deliveries pending, expected {n}")

        async def due_count() -> int:
            async with connected(redis.url) as client:
                return await deliveries_due(client)

        say("delivering")
        worker = stack.spawn("worker", ["-m", "bench._poll_worker"], env)
        samples: list[tuple[float, int, float, float]] = []  # time, count, worker cpu, redis cpu
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            stats = http_json(rurl + "/stats")
            samples.append(
                (
                    stats["time"],
                    stats["count"],
                    cpu_seconds(worker.pid),
                    cpu_seconds(redis.process.pid),
                )
            )
            if stats["count"] >= n or not worker.alive():
                break
            time.sleep(0.1)
        left = -1
        while time.monotonic() < deadline:
            left = run_async(due_count())
            if left == 0:
                break
            time.sleep(0.1)
        worker.stop()
        delivered = samples[-1][1]
        if delivered < n or left != 0:
            raise RuntimeError(
                f"{delivered} of {n} arrived, {left} still due:\n{worker.log_tail()}"
            )
        low = next(s for s in samples if s[1] >= 0.05 * n)
        high = next(s for s in samples if s[1] >= 0.95 * n)
        sent = high[1] - low[1]
        rate = sent / (high[0] - low[0]) if high[0] > low[0] else float("nan")
        worker_us = (high[2] - low[2]) * 1e6 / sent if sent else float("nan")
        redis_us = (high[3] - low[3]) * 1e6 / sent if sent else float("nan")
        first_to_last = samples[-1][0] - samples[0][0]

        say("bare client")
        client = stack.spawn(
            "bare",
            [
                "-m",
                "bench._bare_client",
                "--url",
                rurl + "/hooks/relay",
                "--kind",
                "webhook",
                "--duration",
                str(warmup + window + 10),
            ],
        )
        try:
            time.sleep(warmup)
            s0, c0 = http_json(rurl + "/stats"), cpu_seconds(client.pid)
            time.sleep(window)
            s1, c1 = http_json(rurl + "/stats"), cpu_seconds(client.pid)
        finally:
            client.stop()
        bare_sent = s1["count"] - s0["count"]
        bare = bare_sent / (s1["time"] - s0["time"])
        bare_us = (c1 - c0) * 1e6 / bare_sent if bare_sent else float("nan")

    print_table(
        f"Delivery throughput: {n:,} pending task.succeeded webhooks, one worker, concurrency 200",
        ["run", "deliveries/s", "x bare", "worker us/delivery", "redis us/delivery"],
        [
            ["relay worker (5%..95%)", rate, f"{rate / bare:.2f}", worker_us, redis_us],
            ["bare client", bare, "1.00", f"{bare_us:.1f} (client)", "-"],
        ],
    )
    print(f"all {n:,} delivered and recorded; worker start to last arrival {first_to_last:.1f} s")
    print_results(
        [
            Result(
                "delivery_per_s",
                rate,
                "deliveries/s",
                ratio_note(rate, bare)
                + "; "
                + target_note(rate >= 1000 and rate / bare >= 0.3, ">= 1000/s and >= 0.3x bare"),
            ),
            Result(
                "delivery_worker_cpu_per_delivery",
                worker_us,
                "us/delivery",
                ratio_note(worker_us, bare_us, "bare client's CPU per POST"),
            ),
            Result("delivery_bare_per_s", bare, "posts/s", "1.00x bare"),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
