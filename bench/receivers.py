"""One receiver, or one tenant's many, cannot hold the relay: the breaker's targets.

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
3. **Many receivers.** Tenant `stuck` has 1,280 deliveries pending, four to
   each of 320 tarpit receivers (one tarpit listening on 320 loopback ports:
   each port is a receiver of its own, with its own in-flight bound), at the
   default 10 s delivery timeout: enough to fill the worker's 200 slots two
   attempts per receiver. Once it holds its share of them
   (`relay.delivery.shares`: 192 of 200), tenant `other` makes one final
   event every 100 ms for 20 s (past the stuck attempts' timeout, while
   their retries come due). Figure: from each event to its webhook's
   arrival. Baseline, same worker: the same events before the backlog existed.
   Target: every one within 2 s (without a per-tenant share: up to the 10 s
   timeout, and more while the backlog's retries come due).

`--tiny`: 120 stuck deliveries, 2 s of other events, down for 8 s; 320
receivers with one delivery each.
"""

from __future__ import annotations

import dataclasses
import selectors
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
from relay.delivery.shares import share
from relay.devtools.redis_server import free_port
from relay.store.record import read_records
from support.payloads import new_ids
from support.stats import percentile

FULL = {
    "stuck": 1200,
    "other_seconds": 10.0,
    "down": 60.0,
    "queued": 300,
    "warm": 50,
    "receivers": 320,
    "per_receiver": 4,
    "many_seconds": 20.0,  # past the stuck attempts' timeout: their retries come due
}
TINY = {**FULL, "stuck": 120, "other_seconds": 2.0, "down": 8.0, "per_receiver": 1}
TINY["many_seconds"] = 2.0
EVENT_EVERY = 0.1  # seconds between two of the other tenant's events
DELAY_TARGET = 2.0
ATTEMPTS_TARGET = 15
RETURN_TARGET = 30.0
# Each registered task is polled at once: the events come when the bench makes them.
FAST_POLLS = {"RELAY_UPSTREAM_RATE": "5000"}
WORKER_SLOTS = 200  # the worker's RELAY_DELIVERY_CONCURRENCY (the default)


class Tarpit:
    """Accepts connections on loopback ports, reads them and never answers; counts them
    and the most open at once. Each port is a receiver of its own to the relay."""

    def __init__(self, ports: int = 1) -> None:
        self.listeners = [socket.create_server((HOST, 0), backlog=4096) for _ in range(ports)]
        self.ports = [listener.getsockname()[1] for listener in self.listeners]
        self.port = self.ports[0]
        self.accepted = 0
        self.most_open = 0
        self._open: set[socket.socket] = set()
        self._closing = threading.Event()
        self._selector = selectors.DefaultSelector()
        for listener in self.listeners:
            listener.setblocking(False)
            self._selector.register(listener, selectors.EVENT_READ, "listener")
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closing.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    if key.data == "listener":
                        self._accept(sock)
                    elif not sock.recv(65536):  # the relay gave up on it
                        self._selector.unregister(sock)
                        self._open.discard(sock)
                        sock.close()
                except (BlockingIOError, ConnectionError):
                    continue

    def _accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        conn.setblocking(False)
        self._selector.register(conn, selectors.EVENT_READ, "conn")
        self._open.add(conn)
        self.accepted += 1
        self.most_open = max(self.most_open, len(self._open))

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self._thread.join()
        self._selector.close()
        for sock in [*self.listeners, *self._open]:
            sock.close()


def make_final(redis_url: str, upstream_url: str, ids: list[str], url: str, tenant: str) -> None:
    """Register `ids` for `tenant`, each finished at its first poll: one delivery each."""
    make_finals(redis_url, upstream_url, {url: ids}, tenant)


def make_finals(
    redis_url: str, upstream_url: str, ids_by_url: dict[str, list[str]], tenant: str
) -> None:
    """`make_final` for each webhook URL and its ids, in one plan and one connection."""
    plan = {task_id: [0, 0] for ids in ids_by_url.values() for task_id in ids}
    http_json(upstream_url + "/plan", {"tasks": plan})

    async def register() -> None:
        async with connected(redis_url) as client:
            for url, ids in ids_by_url.items():
                await register_tasks(client, ids, webhook_url=url, tenant=tenant)

    run_async(register())


async def attempts_made(redis_url: str, tenant: str, ids: list[str]) -> int:
    async with connected(redis_url) as client:
        records = await read_records(client, ids)
    return sum(
        len(record.attempts(did))
        for record in records.values()
        if record is not None
        for did in record.delivery_ids(tenant)
    )


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


DELAY_COLUMNS = "run|events|p50 delay s|p99 delay s|max delay s|tarpit conns|most open"


@dataclasses.dataclass
class Beside:
    """The other tenant's delays without a backlog, then beside one at a tarpit."""

    baseline: list[float]
    measured: list[float]
    tarpit_connections: int  # accepted while the backlog waited
    most_open: int  # at once

    def table(self, title: str, backlog: str) -> None:
        print_table(
            f"Another tenant's webhooks beside {title}",
            DELAY_COLUMNS.split("|"),
            [
                ["no backlog (baseline)", len(self.baseline), *_spread(self.baseline), "-", "-"],
                [
                    backlog,
                    len(self.measured),
                    *_spread(self.measured),
                    self.tarpit_connections,
                    self.most_open,
                ],
            ],
        )

    def results(self, prefix: str) -> list[Result]:
        base_max, worst = max(self.baseline), max(self.measured)
        return [
            Result(
                f"{prefix}_max_delay",
                worst,
                "s",
                ratio_note(worst, base_max, "no-backlog max")
                + "; "
                + target_note(worst <= DELAY_TARGET, f"every one <= {DELAY_TARGET:g} s"),
            ),
            Result(f"{prefix}_baseline_max_delay", base_max, "s", "1.00x"),
        ]


def beside_backlog(
    stack: Stack,
    urls: tuple[str, str],
    seconds: float,
    backlog: dict[str, list[str]],
    tarpit: Tarpit,
    attempting: int,
    **env: str,
) -> Beside:
    """The other tenant's events for `seconds`, measured before tenant `stuck` has
    `backlog` (webhook URL -> task ids) and again once the tarpit has had `attempting`
    connections."""
    redis_url, upstream_url = urls
    _receiver, rurl = stack.receiver("--record")
    stack.callback(tarpit.close)
    worker = stack.spawn(
        "worker",
        ["-m", "bench._poll_worker"],
        worker_env(redis_url, upstream_url, **FAST_POLLS, **env),
    )

    def measure() -> list[float]:
        made = other_events(redis_url, upstream_url, rurl + "/other", seconds)
        return delays(made, upstream_url, rurl, 60)

    say("baseline: the other tenant's events, no backlog")
    baseline = measure()
    receivers = f"{len(backlog)} tarpit receivers" if len(backlog) > 1 else "a tarpit"
    say(f"{sum(map(len, backlog.values())):,} deliveries to {receivers}")
    make_finals(redis_url, upstream_url, backlog, "stuck")
    if not wait_until(lambda: tarpit.accepted >= attempting, 30):
        raise RuntimeError(f"the tarpit got {tarpit.accepted} attempts:\n{worker.log_tail()}")
    say("the other tenant's events, beside the stuck backlog")
    measured = measure()
    beside = Beside(baseline, measured, tarpit.accepted, tarpit.most_open)
    tarpit.close()  # the stuck attempts end now, not at their timeout, so the worker stops
    worker.stop()
    return beside


def stuck_backlog(
    stack: Stack, redis_url: str, upstream_url: str, cfg: dict[str, float]
) -> list[Result]:
    tarpit = Tarpit()
    stuck = int(cfg["stuck"])
    backlog = {f"http://{HOST}:{tarpit.port}/hook": new_ids(stuck)}
    beside = beside_backlog(
        stack,
        (redis_url, upstream_url),
        cfg["other_seconds"],
        backlog,
        tarpit,
        1,
        RELAY_DELIVERY_TIMEOUT="2",
    )
    beside.table(f"{stuck:,} stuck deliveries (tarpit, 2 s timeout)", f"{stuck:,} stuck")
    return [
        *beside.results("receivers_other_tenant"),
        Result(
            "receivers_tarpit_connections",
            beside.tarpit_connections,
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


def many_receivers(
    stack: Stack, redis_url: str, upstream_url: str, cfg: dict[str, float]
) -> list[Result]:
    count, each = int(cfg["receivers"]), int(cfg["per_receiver"])
    tarpit = Tarpit(count)
    backlog = {f"http://{HOST}:{port}/hook": new_ids(each) for port in tarpit.ports}
    alone = share(WORKER_SLOTS, 1)
    urls = (redis_url, upstream_url)
    beside = beside_backlog(stack, urls, cfg["many_seconds"], backlog, tarpit, alone)
    stuck = f"{count * each:,} stuck at {count} receivers"
    beside.table(f"{stuck} (tarpits, 10 s timeout)", stuck)
    return [
        *beside.results("receivers_many_other_tenant"),
        Result(
            "receivers_many_tarpit_most_open",
            beside.most_open,
            "connections",
            f"at once, to {count} receivers of one tenant (its share alone: {alone} of"
            f" {WORKER_SLOTS} slots); {beside.tarpit_connections} in all",
        ),
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
        run_async(_flush(redis.url))
        results += many_receivers(stack, redis.url, upstream_url, cfg)
    print_results(results)
    return 0


async def _flush(redis_url: str) -> None:
    async with connected(redis_url) as client:
        await client.flushall()


if __name__ == "__main__":
    raise SystemExit(main())
