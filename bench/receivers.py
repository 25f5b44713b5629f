"""One receiver cannot hold the relay: the circuit breaker's two targets.

    .venv/bin/python -m bench.receivers [--tiny]

One worker process (bench/_poll_worker.py: the product's own startup,
concurrency 200) polls and delivers. Tasks are registered in Redis as the
API does; the stand-in upstream (bench/_servers.py) answers `finished` for
each at its first poll, so the worker's own poll makes its one
`task.succeeded` delivery. An event's time is when the upstream first
answered `finished` for it.

1. **Stuck backlog.** Tenant `stuck` has 1,200 deliveries pending to a tarpit
   (a loopback port that accepts connections and never answers), at a 2 s
   delivery timeout. Once the worker is attempting them, tenant `other`
   makes one final event every 100 ms for 10 s, each for a receiver that
   answers at once (bench/_servers.py). Figure: from each event to its
   webhook's arrival. Baseline, same run and worker: the same events before
   the backlog existed. Target: every one within 2 s.
2. **Down for a minute.** A receiver that took 50 webhooks stops (its port
   refuses connections); 2 s later 300 events are made for it; 60 s after
   it went down it comes back on the same port. Figures: attempts made to it
   meanwhile (from the deliveries' attempt logs; target at most 15) and the
   time from its return until all 300 have arrived (target within 30 s).
   Baseline, same run: 300 deliveries to it while it is up. Default delivery
   settings (10 s timeout, the default retry schedule).

`--tiny`: 120 stuck deliveries, 2 s of other events, down for 8 s.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from bench._common import (
    HOST,
    Result,
    Stack,
    connected,
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
from relay.devtools.redis_server import free_port
from relay.store import keys
from support.payloads import new_ids
from support.stats import percentile

FULL = {"stuck": 1200, "other_seconds": 10.0, "down": 60.0, "queued": 300, "warm": 50}
TINY = {"stuck": 120, "other_seconds": 2.0, "down": 8.0, "queued": 300, "warm": 50}
EVENT_EVERY = 0.1  # seconds between two of the other tenant's events
DELAY_TARGET = 2.0
ATTEMPTS_TARGET = 15
RETURN_TARGET = 30.0
# Each registered task is polled at once: the events come when the bench makes them.
FAST_POLLS = {"RELAY_UPSTREAM_RATE": "5000"}


class Tarpit:
    """Accepts connections on a loopback port and never answers; counts them."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0), backlog=4096)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self._held:
            conn.close()


def make_final(redis_url: str, upstream_url: str, ids: list[str], url: str, tenant: str) -> None:
    """Register `ids` for `tenant`, each finished at its first poll: one delivery each."""
    http_json(upstream_url + "/plan", {"tasks": {task_id: [0, 0] for task_id in ids}})

    async def register() -> None:
        async with connected(redis_url) as client:
            await register_tasks(client, ids, webhook_url=url, tenant=tenant)

    run_async(register())


async def attempts_made(redis_url: str, tenant: str, ids: list[str]) -> int:
    async with connected(redis_url) as client:
        async with client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.lrange(keys.deliveries(tenant, task_id), 0, -1)
            listings = await pipe.execute()
        async with client.pipeline(transaction=False) as pipe:
            for listing in listings:
                for did in listing:
                    pipe.llen(keys.attempts(did))
            return sum(await pipe.execute())


def other_events(redis_url: str, upstream_url: str, url: str, seconds: float) -> list[str]:
    """One final event every EVENT_EVERY seconds for `seconds`; their task ids."""
    made: list[str] = []
    next_at = time.monotonic()
    end = next_at + seconds
    while next_at < end:
        made += new_ids(1)
        make_final(redis_url, upstream_url, made[-1:], url, "other")
        next_at += EVENT_EVERY
        time.sleep(max(0.0, next_at - time.monotonic()))
    return made


def delays(made: list[str], upstream_url: str, receiver_url: str, timeout: float) -> list[float]:
    """From each event (the upstream's first `finished`) to its webhook's arrival."""

    def arrived() -> dict[str, float]:
        found: dict[str, float] = http_json(receiver_url + "/arrivals")
        return found

    wait_until(lambda: set(made) <= set(arrived()), timeout)
    found, finished = arrived(), http_json(upstream_url + "/finished")
    return [found[t] - finished[t] if t in found else float("inf") for t in made]


def stuck_backlog(
    stack: Stack, redis_url: str, upstream_url: str, cfg: dict[str, float]
) -> list[Result]:
    _receiver, rurl = stack.receiver("--record")
    tarpit = Tarpit()
    stack.callback(tarpit.close)
    env = worker_env(redis_url, upstream_url, RELAY_DELIVERY_TIMEOUT="2", **FAST_POLLS)
    worker = stack.spawn("worker", ["-m", "bench._poll_worker"], env)

    def measure() -> list[float]:
        made = other_events(redis_url, upstream_url, rurl + "/other", cfg["other_seconds"])
        return delays(made, upstream_url, rurl, 30)

    say("baseline: the other tenant's events, no backlog")
    baseline = measure()
    stuck = int(cfg["stuck"])
    say(f"{stuck} deliveries to a tarpit")
    tarpit_url = f"http://{HOST}:{tarpit.port}/hook"
    make_final(redis_url, upstream_url, new_ids(stuck), tarpit_url, "stuck")
    if not wait_until(lambda: tarpit.accepted > 0, 10):
        raise RuntimeError(f"the tarpit was never attempted:\n{worker.log_tail()}")
    say("the other tenant's events, beside the stuck backlog")
    measured = measure()
    tarpit_attempts = tarpit.accepted
    worker.stop()

    base_max, worst = max(baseline), max(measured)
    print_table(
        f"Another tenant's webhooks beside {stuck:,} stuck deliveries (tarpit, 2 s timeout)",
        ["run", "events", "p50 delay s", "p99 delay s", "max delay s", "tarpit connections"],
        [
            ["no backlog (baseline)", len(baseline), *_spread(baseline), "-"],
            [f"{stuck:,} stuck", len(measured), *_spread(measured), tarpit_attempts],
        ],
    )
    return [
        Result(
            "receivers_other_tenant_max_delay",
            worst,
            "s",
            ratio_note(worst, base_max, "no-backlog max")
            + "; "
            + target_note(worst <= DELAY_TARGET, f"every one <= {DELAY_TARGET:g} s"),
        ),
        Result("receivers_other_tenant_baseline_max_delay", base_max, "s", "1.00x"),
        Result(
            "receivers_tarpit_connections",
            tarpit_attempts,
            "connections",
            f"of {stuck:,} deliveries, while the other tenant's went out",
        ),
    ]


def down_for_a_while(
    stack: Stack, redis_url: str, upstream_url: str, cfg: dict[str, float]
) -> list[Result]:
    port = free_port()
    url = f"http://{HOST}:{port}/hook"

    def start_receiver() -> Any:
        argv = ["-m", "bench._servers", "receiver", "--port", str(port), "--record"]
        return stack.spawn("receiver", argv)

    def arrived() -> int:
        return len(http_json(f"http://{HOST}:{port}/arrivals"))

    receiver = start_receiver()
    worker = stack.spawn(
        "worker", ["-m", "bench._poll_worker"], worker_env(redis_url, upstream_url, **FAST_POLLS)
    )
    queued, down = int(cfg["queued"]), cfg["down"]

    say("baseline: deliveries to the receiver while it is up")
    make_final(redis_url, upstream_url, new_ids(int(cfg["warm"])), url, "warm")
    wait_until(lambda: arrived() >= cfg["warm"], 30)
    before = arrived()
    started = time.monotonic()
    make_final(redis_url, upstream_url, new_ids(queued), url, "warm")
    wait_until(lambda: arrived() >= before + queued, 60)
    up_seconds = time.monotonic() - started

    say(f"the receiver goes down for {down:g} s; {queued} events 2 s in")
    receiver.stop()
    went_down = time.monotonic()
    time.sleep(2)
    ids = new_ids(queued)
    make_final(redis_url, upstream_url, ids, url, "down")
    time.sleep(max(0.0, went_down + down - time.monotonic()))
    attempts = run_async(attempts_made(redis_url, "down", ids))

    say("the receiver is back")
    receiver = start_receiver()
    back = time.monotonic()
    all_in = wait_until(lambda: arrived() >= queued, 120, 0.05)
    after_return = time.monotonic() - back if all_in else float("inf")
    worker.stop()

    print_table(
        f"A receiver down for {down:g} s with {queued} deliveries queued (default settings)",
        ["run", "attempts while down", f"s to deliver {queued}"],
        [
            ["receiver up all along (baseline)", "-", up_seconds],
            [f"down {down:g} s, then back", attempts, after_return],
        ],
    )
    return [
        Result(
            "receivers_attempts_while_down",
            attempts,
            "attempts",
            f"{queued} queued, down {down:g} s; "
            + target_note(attempts <= ATTEMPTS_TARGET, f"<= {ATTEMPTS_TARGET}"),
        ),
        Result(
            "receivers_all_delivered_after_return",
            after_return,
            "s",
            ratio_note(after_return, up_seconds, "receiver up all along")
            + "; "
            + target_note(after_return <= RETURN_TARGET, f"<= {RETURN_TARGET:g} s"),
        ),
        Result("receivers_up_all_along", up_seconds, "s", "1.00x"),
    ]


def _spread(values: list[float]) -> list[float]:
    return [percentile(values, 50), percentile(values, 99), max(values)]


def main(argv: list[str] | None = None) -> int:
    args = standard_args(__doc__).parse_args(argv)
    cfg = TINY if args.tiny else FULL
    results: list[Result] = []
    with Stack() as stack:
        redis = stack.redis()
        _upstream, upstream_url = stack.upstream()
        results += stuck_backlog(stack, redis.url, upstream_url, cfg)
        run_async(_flush(redis.url))
        results += down_for_a_while(stack, redis.url, upstream_url, cfg)
    print_results(results)
    return 0


async def _flush(redis_url: str) -> None:
    async with connected(redis_url) as client:
        await client.flushall()


if __name__ == "__main__":
    raise SystemExit(main())
