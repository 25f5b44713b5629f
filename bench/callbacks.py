"""Callbacks as the fast path, polling as the net: the relay against fixed 5-second polling.

    .venv/bin/python -m bench.callbacks [--tiny | --upstream-durations]

Played in real time against the project's simulator (`relay simulator
--strict`, plain HTTP on loopback). N task plans are drawn from the
upstream's families; each plan is created three times in the simulator, so
three runs see the same tasks at once:

- relay (callbacks): registered with `"upstream_webhook": true`; the
  simulator's own webhook for the task (sent when it finishes) goes to the
  relay's `POST /v1/upstream/webhook` with `x-webhook-secret`.
- relay (callbacks, lost tenth): the same, but a tenth of the tasks (drawn at
  random) are created without a webhook URL, so only the safety-net polls
  can end them.
- fixed 5 s polling: a bare aiohttp client fetching each task every
  RELAY_POLL_MIN_INTERVAL from its creation until it answers `finished`.

One real relay (`relay api` + `relay worker`, a real redis-server) serves
both relay runs; each plan is registered right after it is created, as a
client would. Calls are counted by the simulator, per task id (`/sim/stats`).
Delay = arrival of the relay's `task.succeeded` webhook at a receiver (or,
for the bare client, its reading of `finished`) - the task's end upstream
(its creation + its planned time to the final answer).

Mix (full mode, shortened so the run ends in about 3 minutes): the
simulator's happy-path shares (grid 25, single 15, video 8, describe 7,
shorten 5, seed 6, synchronous 9) with NOTES.md's typical durations, seed
5-15 s, describe and shorten 10-30 s, upscale 15-45 s, imagine 30-90 s,
video 60-90 s (shortened from 1-5 minutes), synchronous 0 s; before
processing, staged 0-2 s, pending 0-5 s (no relax queue), starting 1-5 s.
Creations are spread over 20 s. Settings: RELAY_POLL_MIN_INTERVAL 5 s
(default), RELAY_POLL_MAX_INTERVAL 30 s (the default is 120 s; 30 s lets
the lost tenth end within the run), the rest default.

`--upstream-durations` plays NOTES.md's durations unshortened (video 1-5
minutes, 15% of tasks in a relax queue of 0-10 minutes) at the default
RELAY_POLL_MAX_INTERVAL (120 s): about 18 minutes. `--tiny` runs a dozen
tasks with every time scaled by 0.1, for the smoke test.

Targets: with callbacks for every task, at most 0.2x the calls of fixed
5-second polling and a p95 delay under 1 s; with a tenth lost, those tasks
still end within RELAY_POLL_MAX_INTERVAL of finishing.

The calls ratio depends on how long tasks run: a task costs the relay two
calls at least (at once, and the callback's fetch) and one more per
RELAY_POLL_MAX_INTERVAL, the bare client one per 5 s (a synchronous task
one call either way). So the shortened mix with its 30 s net sits above
0.2x where the upstream's own durations at the default 120 s do not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
import urllib.error
from collections.abc import Sequence
from typing import Any

import aiohttp

from bench._common import (
    HOST,
    UPSTREAM_KEY,
    Result,
    Stack,
    http_json,
    print_results,
    print_table,
    say,
    standard_args,
    target_note,
    wait_for_log,
    wait_until,
    worker_env,
)
from bench.api import wait_healthy
from relay.devtools.redis_server import free_port
from relay.simulator.plans import Plan, final_at
from support.payloads import new_ids
from support.stats import percentile

CLIENT_KEY = "bench-client-key"  # worker_env's RELAY_API_KEYS gives it to TENANT
UPSTREAM_WEBHOOK_SECRET = "bench-upstream-webhook-secret"
RATIO_TARGET = 0.2
P95_TARGET = 1.0  # seconds, before any scaling


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    shape: str  # the simulator's result shape
    weight: int
    low: float  # processing seconds
    high: float


@dataclasses.dataclass(frozen=True)
class Mode:
    label: str
    tasks: int
    spread: float  # creations spread over this many seconds
    scale: float  # every duration and interval is multiplied by it
    max_interval: float  # RELAY_POLL_MAX_INTERVAL before scaling
    video_high: float
    relax_share: float

    @property
    def min_interval(self) -> float:
        return 5.0 * self.scale  # the default RELAY_POLL_MIN_INTERVAL, and the bare client's


FULL = Mode("shortened", 300, 20.0, 1.0, 30.0, 90.0, 0.0)
UPSTREAM = Mode("upstream durations", 300, 30.0, 1.0, 120.0, 300.0, 0.15)
# Every duration and interval times 0.1: the full run's proportions in a tenth of its time.
TINY = Mode("tiny", 12, 1.0, 0.1, 30.0, 90.0, 0.0)


def families(video_high: float) -> tuple[Family, ...]:
    """The upstream's happy-path families, weighted as the simulator draws them."""
    return (
        Family("seed", "seed", 6, 5, 15),
        Family("describe", "describe", 7, 10, 30),
        Family("shorten", "shorten", 5, 10, 30),
        Family("upscale", "single", 15, 15, 45),
        Family("imagine", "grid", 25, 30, 90),
        Family("video", "video", 8, 60, video_high),
        Family("synchronous", "sync", 9, 0, 0),
    )


@dataclasses.dataclass(frozen=True)
class Spec:
    """One task plan: when it is created (s after the start) and what the simulator gets."""

    family: str
    offset: float
    fields: dict[str, Any]  # /sim/tasks overrides: shape and phase seconds


def draw_mix(mode: Mode, seed: int = 9) -> list[Spec]:
    """The run's task plans, reproducible from `seed`. Pure."""
    rng = random.Random(seed)
    kinds = families(mode.video_high)
    specs = []
    for _ in range(mode.tasks):
        kind = rng.choices(kinds, weights=[k.weight for k in kinds])[0]
        queue = rng.uniform(0, 5)
        if rng.random() < mode.relax_share:
            queue += rng.uniform(0, 600)
        seconds = {
            "staged_seconds": rng.uniform(0, 2),
            "queue_seconds": queue,
            "starting_seconds": rng.uniform(1, 5),
            "duration_seconds": rng.uniform(kind.low, kind.high),
        }
        specs.append(
            Spec(
                kind.name,
                rng.uniform(0, mode.spread) * mode.scale,
                {
                    "shape": kind.shape,
                    **{k: round(v * mode.scale, 3) for k, v in seconds.items()},
                },
            )
        )
    return specs


@dataclasses.dataclass
class Copy:
    """One simulator task: which run it belongs to and what was seen of it."""

    run: str  # "callbacks", "lost", "lost-callback" or "polling"
    plan: int  # the three copies of one plan share it
    family: str
    created_at: float = math.nan  # wall clock, as the creating call was sent
    ends_at: float = math.nan  # created_at + planned time to the final answer
    detected_at: float = math.nan  # the bare client's `finished` reading
    client_calls: int = 0


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    tasks: int
    calls: int
    delays: list[float]  # seconds; only the tasks that ended
    baseline_calls: int  # the bare client's on the same plans

    @property
    def missing(self) -> int:
        return self.tasks - len(self.delays)

    @property
    def ratio(self) -> float:
        return self.calls / self.baseline_calls if self.baseline_calls else math.nan

    def cells(self) -> list[object]:
        return [
            self.label,
            self.tasks,
            self.calls,
            self.calls / self.tasks if self.tasks else math.nan,
            f"{self.ratio:.2f}x",
            percentile(self.delays, 50),
            percentile(self.delays, 95),
            percentile(self.delays, 99),
            max(self.delays, default=math.nan),
            self.missing,
        ]


HEADERS = ["run", "tasks", "calls", "calls/task", "calls ratio", "p50 s", "p95 s", "p99 s"]
HEADERS += ["max s", "not ended"]
FAMILY_HEADERS = ["family", "tasks", "relay calls/task", "polling calls/task", "calls ratio"]
FAMILY_HEADERS += ["relay p95 s", "polling p95 s"]


def row_for(
    label: str,
    copies: dict[str, Copy],
    runs: Sequence[str],
    calls: dict[str, int],
    ended: dict[str, float],
) -> Row:
    """The calls and delays of the copies in `runs`, and the bare client's calls on the
    same plans; `ended` maps a task id to when it ended. Pure."""
    chosen = [task_id for task_id, c in copies.items() if c.run in runs]
    plans = {copies[t].plan for t in chosen}
    bare = [t for t, c in copies.items() if c.run == "polling" and c.plan in plans]
    return Row(
        label,
        len(chosen),
        sum(calls.get(task_id, 0) for task_id in chosen),
        [ended[t] - copies[t].ends_at for t in chosen if t in ended],
        sum(calls.get(task_id, 0) for task_id in bare),
    )


class Player:
    """Creates each plan's three copies at its time and plays the bare 5-second client."""

    def __init__(self, sim_url: str, api_url: str, hook_url: str, mode: Mode) -> None:
        self.sim_url = sim_url
        self.api_url = api_url
        self.hook_url = hook_url
        self.mode = mode
        self.copies: dict[str, Copy] = {}

    async def play(self, specs: Sequence[Spec], lost: set[int]) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            start = time.time() + 0.5
            await asyncio.gather(
                *(self.one(session, start, i, spec, i in lost) for i, spec in enumerate(specs))
            )

    async def one(
        self, session: aiohttp.ClientSession, start: float, index: int, spec: Spec, lost: bool
    ) -> None:
        await asyncio.sleep(max(0.0, start + spec.offset - time.time()))
        callbacks_id, lost_id, polling_id = new_ids(3)
        created = await asyncio.gather(
            self.create(session, callbacks_id, Copy("callbacks", index, spec.family), spec),
            self.create(
                session,
                lost_id,
                Copy("lost" if lost else "lost-callback", index, spec.family),
                spec,
            ),
            self.create(session, polling_id, Copy("polling", index, spec.family), spec),
        )
        await asyncio.gather(
            self.register(session, callbacks_id),
            self.register(session, lost_id),
            self.poll_bare(session, polling_id, created[2]),
        )

    async def create(
        self, session: aiohttp.ClientSession, task_id: str, copy: Copy, spec: Spec
    ) -> Copy:
        """Create `copy` in the simulator; its webhook goes to the relay unless it is lost."""
        body: dict[str, Any] = {"task_id": task_id, **spec.fields}
        if copy.run in ("callbacks", "lost-callback"):
            body["webhook_url"] = self.api_url + "/v1/upstream/webhook"
            body["webhook_secret"] = UPSTREAM_WEBHOOK_SECRET
        sent = time.time()
        async with session.post(self.sim_url + "/sim/tasks", json=body) as response:
            answer = await response.json()
            if response.status != 201:
                raise RuntimeError(f"simulator refused a task: {response.status} {answer}")
        # The simulator's clock starts while handling the call: `sent` errs early by the
        # call's own time (about a millisecond), so delays err long by as much.
        copy.created_at = sent
        copy.ends_at = sent + final_at(Plan(**answer["plan"]))
        self.copies[task_id] = copy
        return copy

    async def register(self, session: aiohttp.ClientSession, task_id: str) -> None:
        async with session.post(
            self.api_url + "/v1/tasks",
            json={"task_id": task_id, "webhook_url": self.hook_url, "upstream_webhook": True},
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        ) as response:
            if response.status != 201:
                raise RuntimeError(f"relay refused a registration: {await response.text()}")

    async def poll_bare(self, session: aiohttp.ClientSession, task_id: str, copy: Copy) -> None:
        """Fetch every min interval from creation (no drift) until the answer is final."""
        give_up = copy.ends_at + 4 * self.mode.max_interval * self.mode.scale
        n = 0
        while time.time() < give_up:
            status = await self.fetch_status(session, task_id)
            copy.client_calls += 1
            if status in ("finished", "failed"):
                copy.detected_at = time.time()
                return
            n += 1
            await asyncio.sleep(
                max(0.0, copy.created_at + n * self.mode.min_interval - time.time())
            )

    async def fetch_status(self, session: aiohttp.ClientSession, task_id: str) -> str | None:
        """The task's status word, as a careful client reads it."""
        try:
            return await self.fetch_once(session, task_id)
        except aiohttp.ClientConnectionError:
            # uvicorn closes connections idle for 5 s, this client's very interval: a
            # kept-alive one may close under the request, and a fresh one is then taken.
            return await self.fetch_once(session, task_id)

    async def fetch_once(self, session: aiohttp.ClientSession, task_id: str) -> str | None:
        async with session.post(
            self.sim_url + "/api/v1/fetch",
            json={"task_id": task_id},
            headers={"authorization": UPSTREAM_KEY},
        ) as response:
            status: str | None = (await response.json()).get("status")
            return status


def simulator_up(url: str) -> bool:
    try:
        http_json(url + "/sim/stats", timeout=1)
    except (urllib.error.URLError, OSError):
        return False
    return True


def wait_for_webhooks(receiver_url: str, expected: int, until: float) -> dict[str, float]:
    """The receiver's first final-webhook arrival per task, once all came or at `until`."""
    while time.time() < until and http_json(receiver_url + "/stats")["count"] < expected:
        time.sleep(0.5)
    arrivals: dict[str, float] = http_json(receiver_url + "/arrivals")
    return arrivals


def run(mode: Mode) -> tuple[Player, dict[str, float], dict[str, int], int]:
    """The whole run: every copy, the webhook arrivals, the calls per task id, duplicates."""
    specs = draw_mix(mode)
    lost = set(random.Random(10).sample(range(len(specs)), max(1, len(specs) // 10)))
    max_interval = mode.max_interval * mode.scale
    with Stack() as stack:
        redis = stack.redis()
        sim_port = free_port()
        argv = ["-m", "relay", "simulator", "--host", HOST, "--port", str(sim_port)]
        stack.spawn("simulator", [*argv, "--api-key", UPSTREAM_KEY, "--strict"], ready=None)
        sim_url = f"http://{HOST}:{sim_port}"
        if not wait_until(lambda: simulator_up(sim_url), 30):
            raise RuntimeError("the simulator did not start")
        _receiver, receiver_url = stack.receiver("--record")
        env = worker_env(
            redis.url,
            sim_url,
            RELAY_POLL_MIN_INTERVAL=f"{mode.min_interval:g}",
            RELAY_POLL_MAX_INTERVAL=f"{max_interval:g}",
            RELAY_UPSTREAM_WEBHOOK_SECRET=UPSTREAM_WEBHOOK_SECRET,
        )
        api_port = free_port()
        stack.spawn(
            "relay-api",
            ["-m", "relay", "api", "--host", HOST, "--port", str(api_port)],
            env,
            ready=None,
        )
        api_url = f"http://{HOST}:{api_port}"
        wait_healthy(api_url)
        worker = stack.spawn("relay-worker", ["-m", "relay", "worker"], env, ready=None)
        wait_for_log(worker, "worker started")
        player = Player(sim_url, api_url, receiver_url + "/hooks/relay", mode)
        say(f"{len(specs)} plans x 3 copies ({mode.label}), lost tenth: {len(lost)} tasks")
        asyncio.run(player.play(specs, lost))
        relayed = sum(1 for c in player.copies.values() if c.run != "polling")
        last_end = max(c.ends_at for c in player.copies.values())
        say(f"every plan played, the bare client done; waiting for {relayed} webhooks")
        arrivals = wait_for_webhooks(receiver_url, relayed, last_end + 2 * max_interval + 5)
        calls: dict[str, int] = http_json(sim_url + "/sim/stats")["by_task"]
        duplicates = int(http_json(receiver_url + "/stats")["duplicates"])
        if not worker.alive():
            raise RuntimeError(f"the relay worker exited:\n{worker.log_tail()}")
    return player, arrivals, calls, duplicates


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__)
    parser.add_argument(
        "--upstream-durations",
        action="store_true",
        help="NOTES.md's durations unshortened, default RELAY_POLL_MAX_INTERVAL (about 15 min)",
    )
    args = parser.parse_args(argv)
    mode = TINY if args.tiny else UPSTREAM if args.upstream_durations else FULL
    player, arrivals, calls, duplicates = run(mode)
    copies = player.copies
    detected = {t: c.detected_at for t, c in copies.items() if c.run == "polling"}
    detected = {t: at for t, at in detected.items() if not math.isnan(at)}
    ended = {**arrivals, **detected}
    baseline = row_for("fixed 5 s polling (bare client)", copies, ["polling"], calls, ended)
    relay_all = row_for("relay (callbacks)", copies, ["callbacks"], calls, ended)
    relay_lost = row_for(
        "relay (callbacks, lost tenth)", copies, ["lost", "lost-callback"], calls, ended
    )
    lost_only = row_for("  of which the lost tenth", copies, ["lost"], calls, ended)
    max_interval = mode.max_interval * mode.scale
    print_table(
        f"Callbacks, real time: {mode.tasks} plans ({mode.label}) played by each run at once; "
        f"RELAY_POLL_MIN_INTERVAL {mode.min_interval:g} s, MAX {max_interval:g} s; "
        "delay = task's end upstream -> task.succeeded at the receiver",
        HEADERS,
        [r.cells() for r in (relay_all, relay_lost, lost_only, baseline)],
    )
    bare_calls = sum(c.client_calls for c in copies.values())
    print(
        f"calls counted by the simulator per task id; the bare client counted {bare_calls} "
        f"of its own (the simulator {baseline.calls}); duplicate webhooks {duplicates}"
    )
    by_family = []
    for family in families(mode.video_high):
        mine = {t: c for t, c in copies.items() if c.family == family.name}
        relay = row_for(family.name, mine, ["callbacks"], calls, ended)
        bare = row_for(family.name, mine, ["polling"], calls, ended)
        by_family.append(
            [
                family.name,
                relay.tasks,
                relay.calls / relay.tasks if relay.tasks else math.nan,
                bare.calls / bare.tasks if bare.tasks else math.nan,
                f"{relay.ratio:.2f}x",
                percentile(relay.delays, 95),
                percentile(bare.delays, 95),
            ]
        )
    print_table(
        "By family: relay (callbacks) against fixed 5 s polling",
        FAMILY_HEADERS,
        by_family,
    )
    ratio = relay_all.ratio
    p95 = percentile(relay_all.delays, 95)
    p95_target = P95_TARGET * mode.scale
    lost_max = max(lost_only.delays, default=math.nan)
    lost_in_time = lost_only.missing == 0 and lost_max <= max_interval
    print_results(
        [
            Result(
                "callbacks_calls_ratio",
                ratio,
                "x",
                target_note(ratio <= RATIO_TARGET, f"<= {RATIO_TARGET}x fixed 5 s polling"),
            ),
            Result(
                "callbacks_delay_p95",
                p95,
                "s",
                target_note(
                    p95 < p95_target and relay_all.missing == 0,
                    f"< {p95_target:g} s, every task ended",
                ),
            ),
            Result("callbacks_delay_p99", percentile(relay_all.delays, 99), "s", "no target"),
            Result(
                "callbacks_lost_delay_max",
                lost_max,
                "s",
                target_note(lost_in_time, f"<= RELAY_POLL_MAX_INTERVAL {max_interval:g} s"),
            ),
            Result(
                "callbacks_lost_delay_p95",
                percentile(lost_only.delays, 95),
                "s",
                f"{percentile(lost_only.delays, 95) / max_interval:.2f}x RELAY_POLL_MAX_INTERVAL",
            ),
            Result(
                "callbacks_lost_run_calls_ratio",
                relay_lost.ratio,
                "x",
                "the whole run with a tenth lost, against fixed 5 s polling",
            ),
            Result(
                "callbacks_polling_delay_p95",
                percentile(baseline.delays, 95),
                "s",
                "fixed 5 s polling, the baseline",
            ),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
