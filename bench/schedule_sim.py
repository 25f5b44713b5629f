"""How many upstream calls the poll schedule spends, and how late it learns that a task ended.

    .venv/bin/python -m bench.schedule_sim [--tasks 5000] [--seed 1] [--nonlinear 0.1]

A simulated clock, no sleeping and no I/O: every task of a synthetic workload (its
distribution is the WORKLOAD block below, printed by every run, and follows
shared/upstream/NOTES.md) is polled twice, once by the relay's own schedule and once every
5 seconds. Each poll at `t` seconds after registration asks the upstream simulator's pure
plan for its answer (`relay.simulator.plans.answer(plan, t)`), reads it with
`relay.core.normalize.normalize` and feeds it to `relay.core.lifecycle.observe`, exactly as
the worker does: the first poll at once, the next one `step.delay` later, until the step
is final. The fixed schedule runs the same lifecycle but always waits 5 s.

Figures:
- calls: upstream fetches per task, registration to final.
- delay: the moment the relay's poll makes the task final minus the moment the upstream's
  answer became final (`final_at` of the plan's timeline). Tasks that end `failed` are
  reported on their own row and left out of the overall delay figures: the failed grace
  (RELAY_FAILED_GRACE, 30 s here) deliberately delays believing a failure, whatever the
  schedule.
"""

from __future__ import annotations

import argparse
import math
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from relay.core.lifecycle import observe
from relay.core.model import TaskState
from relay.core.normalize import normalize
from relay.core.schedule import PollPolicy
from relay.simulator.plans import (
    PercentageStyle,
    Phase,
    Plan,
    Shape,
    answer,
    final_at,
    format_percentage,
    timeline,
)

K = TypeVar("K")

FIXED_INTERVAL = 5.0
POLICY = PollPolicy(min_interval=5.0, max_interval=120.0, failed_grace=30.0)
T0 = 1_764_410_400.0  # registration of every task, 2025-11-29T10:00:00Z
DEADLINE = 3 * 3600.0


# --- WORKLOAD ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """Task types that share a typical duration (NOTES.md) and a result shape."""

    name: str
    weight: float  # percent of all tasks
    task_types: tuple[str, ...]
    models: tuple[str, ...]
    low: float  # processing seconds, uniform in [low, high]
    high: float
    shape: Shape


FAMILIES: tuple[Family, ...] = (
    # Synchronous models: the first fetch already answers `finished`.
    Family("sync", 10, ("imagine",), ("flux-schnell", "flux-pro-ultra"), 0, 0, "sync"),
    Family("seed", 6, ("seed",), ("midjourney",), 5, 15, "seed"),
    Family("text", 12, ("describe", "shorten"), ("midjourney",), 10, 30, "describe"),
    Family(
        "upscale",
        18,
        ("upscale#1", "upscale-2x", "upscale-creative", "faceswap"),
        ("midjourney",),
        15,
        45,
        "single",
    ),
    Family(
        "image",
        44,
        ("imagine", "reroll", "variation-1", "variation-strong", "blend"),
        ("midjourney", "niji-6", "flux-pro"),
        30,
        90,
        "grid",
    ),
    Family("video", 10, ("imagine-video", "imagine-video-extend"), ("kling-v2",), 60, 300, "video"),
)

# Of the asynchronous tasks (all but `sync`):
FAILED_SHARE = 0.08  # end `failed` for good, after processing (the upstream's retries spent)
RETRIED_SHARE = 0.10  # image tasks only, as the simulator: fail half-way, retried, then finish
UNKNOWN_WORD_SHARE = 0.05  # report `retrying` (a word the relay does not know) while processing
RELAX_SHARE = 0.15  # wait in the relax queue, `pending` for an extra uniform 0..RELAX_MAX
RELAX_MAX = 600.0
STAGED_MAX = 2.0  # `staged`, uniform 0..2 s (the simulator's)
SHORT_QUEUE_MAX = 5.0  # `pending` outside the relax queue, uniform 0..5 s
STARTING = (1.0, 5.0)  # `starting`, uniform
PEAK_SHARE = 0.25  # peak hours: processing takes a uniform 1x..PEAK_FACTOR longer
PEAK_FACTOR = 1.5
RETRY_SECONDS = (5.0, 20.0)  # a retried task reports `failed` this long before it restarts
# How the percentage is spelled (the simulator's styles): "empty" and "missing" say nothing.
STYLE_WEIGHTS: dict[PercentageStyle, float] = {
    "plain": 70,
    "percent": 10,
    "empty": 10,
    "missing": 10,
}


def _stepped(x: float) -> float:
    return math.floor(x * 7) / 7


# How the percentage moves with time while processing. The simulator's is linear; a share
# NONLINEAR_SHARE of the tasks that report a percentage move otherwise (split as the weights
# say), to check that the schedule does not lean on a straight line.
NONLINEAR_SHARE = 0.10
PACES: dict[str, tuple[float, Callable[[float], float]]] = {
    "linear": (0, lambda x: x),  # weight: 1 - NONLINEAR_SHARE
    "stepped": (0.4, _stepped),  # jumps of ~14 points, as progress images come
    "ease-out": (0.3, lambda x: 1 - (1 - x) ** 1.5),  # fast start, slow end
    "ease-in": (0.3, lambda x: x**1.5),  # slow start, fast end
}


def pace_weights(nonlinear: float) -> dict[str, float]:
    weights = {name: weight * nonlinear for name, (weight, _) in PACES.items()}
    weights["linear"] = 1.0 - nonlinear
    return weights


@dataclass(frozen=True)
class SimTask:
    plan: Plan
    family: str
    outcome: str  # "ok", "failed", "retried"
    relax: bool
    peak: bool
    pace: str
    phases: tuple[Phase, ...]
    completes_at: float  # seconds after registration at which the answer becomes final

    @property
    def says_progress(self) -> bool:
        return self.plan.percentage_style in ("plain", "percent")


def _pick(rng: random.Random, weights: Mapping[K, float]) -> K:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def make_task(rng: random.Random, nonlinear: float = NONLINEAR_SHARE) -> SimTask:
    family = rng.choices(FAMILIES, weights=[f.weight for f in FAMILIES])[0]
    task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    task_type = rng.choice(family.task_types)
    model = rng.choice(family.models)
    style = _pick(rng, STYLE_WEIGHTS)
    pace = _pick(rng, pace_weights(nonlinear))
    if family.shape == "sync":
        plan = Plan(task_id, task_type, model, "sync", 0.0, 0.0, 0.0, 0.0, style)
        return SimTask(plan, family.name, "ok", False, False, "linear", (), 0.0)
    shape: Shape = family.shape
    if task_type == "shorten":
        shape = "shorten"
    draw = rng.random()
    outcome = "ok"
    if draw < FAILED_SHARE:
        outcome, shape = "failed", "failed"
    elif family.name == "image" and draw < FAILED_SHARE + RETRIED_SHARE:
        outcome, shape = "retried", "retried"
    elif rng.random() < UNKNOWN_WORD_SHARE:
        shape = "unknown_word"
    relax = rng.random() < RELAX_SHARE
    queue = rng.uniform(0, SHORT_QUEUE_MAX) + (rng.uniform(0, RELAX_MAX) if relax else 0.0)
    peak = rng.random() < PEAK_SHARE
    duration = rng.uniform(family.low, family.high) * (rng.uniform(1, PEAK_FACTOR) if peak else 1)
    plan = Plan(
        task_id=task_id,
        task_type=task_type,
        model=model,
        shape=shape,
        staged_seconds=rng.uniform(0, STAGED_MAX),
        queue_seconds=queue,
        starting_seconds=rng.uniform(*STARTING),
        duration_seconds=duration,
        percentage_style=style,
        retry_seconds=rng.uniform(*RETRY_SECONDS) if outcome == "retried" else 0.0,
    )
    return SimTask(plan, family.name, outcome, relax, peak, pace, timeline(plan), final_at(plan))


def make_workload(tasks: int, seed: int, nonlinear: float = NONLINEAR_SHARE) -> list[SimTask]:
    rng = random.Random(seed)
    return [make_task(rng, nonlinear) for _ in range(tasks)]


def describe_workload(nonlinear: float = NONLINEAR_SHARE) -> list[str]:
    lines = ["workload (seeded; shares are draw probabilities):"]
    for f in FAMILIES:
        span = "finished at the first fetch" if f.shape == "sync" else f"{f.low:g}-{f.high:g} s"
        lines.append(f"  {f.weight:>4g}%  {f.name:<8} {span:<28} {', '.join(f.task_types)}")
    lines += [
        f"  async tasks: {FAILED_SHARE:.0%} end failed; {RETRIED_SHARE:.0%} of image tasks fail "
        f"half-way, stay failed {RETRY_SECONDS[0]:g}-{RETRY_SECONDS[1]:g} s, restart from 0 and "
        f"finish; {UNKNOWN_WORD_SHARE:.0%} say `retrying` instead of `processing`",
        f"  queue: staged 0-{STAGED_MAX:g} s, pending 0-{SHORT_QUEUE_MAX:g} s, "
        f"{RELAX_SHARE:.0%} also wait 0-{RELAX_MAX:g} s in the relax queue; "
        f"starting {STARTING[0]:g}-{STARTING[1]:g} s",
        f"  peak hours: {PEAK_SHARE:.0%} take 1-{PEAK_FACTOR:g}x the typical duration",
        "  percentage spelling: "
        + ", ".join(f"{k} {v:g}%" for k, v in STYLE_WEIGHTS.items())
        + " (empty/missing: no progress at all)",
        "  percentage pace (of tasks that send one): "
        + ", ".join(f"{k} {100 * w:.3g}%" for k, w in pace_weights(nonlinear).items()),
        f"  policy: min {POLICY.min_interval:g} s, max {POLICY.max_interval:g} s, "
        f"failed grace {POLICY.failed_grace:g} s; fixed schedule: every {FIXED_INTERVAL:g} s",
    ]
    return lines


# --- the upstream and the two schedules ------------------------------------------------------


def _progress_fraction(phases: Sequence[Phase], elapsed: float) -> float | None:
    start = 0.0
    for phase in phases:
        if elapsed < start + phase.seconds:
            return (elapsed - start) / phase.seconds if phase.progress else None
        start += phase.seconds
    return None


def upstream_answer(task: SimTask, elapsed: float) -> dict[str, object]:
    """The simulator's answer, with the percentage reshaped by the task's pace."""
    body = answer(task.plan, elapsed)
    if task.pace != "linear" and task.says_progress and "percentage" in body:
        x = _progress_fraction(task.phases, elapsed)
        if x is not None:
            value = max(0, min(99, int(100 * PACES[task.pace][1](x))))
            body["percentage"] = format_percentage(task.plan.percentage_style, value)
    return body


def poll(task: SimTask, policy: PollPolicy, fixed: float | None) -> tuple[int, float]:
    """Upstream calls until the relay holds the final answer, and when that was (seconds)."""
    state = TaskState(registered_at=T0, deadline_at=T0 + DEADLINE)
    t = 0.0
    calls = 0
    while t < DEADLINE:
        obs = normalize(upstream_answer(task, t), task.plan.task_id)
        step = observe(state, obs, T0 + t, policy)
        calls += 1
        if step.delay is None:
            return calls, t
        state = step.state
        t += fixed if fixed is not None else step.delay
    return calls, math.inf


# --- figures ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Figures:
    calls: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)

    def add(self, calls: int, delay: float) -> None:
        self.calls.append(calls)
        self.delays.append(delay)

    @property
    def calls_mean(self) -> float:
        return sum(self.calls) / len(self.calls) if self.calls else math.nan

    def calls_p(self, q: float) -> float:
        return percentile([float(c) for c in self.calls], q)

    def delay_p(self, q: float) -> float:
        return percentile(self.delays, q)


@dataclass
class Row:
    name: str
    fixed: Figures = field(default_factory=Figures)
    relay: Figures = field(default_factory=Figures)

    @property
    def tasks(self) -> int:
        return len(self.relay.calls)


@dataclass
class Report:
    tasks: int
    seed: int
    rows: dict[str, Row]

    @property
    def overall(self) -> Row:
        return self.rows["all but failed"]

    def headline(self) -> dict[str, tuple[float, float, str]]:
        """name -> (relay's value, fixed-5s value, unit)."""
        o, f = self.overall, self.rows["failed (30 s grace)"]
        figures = (
            (o.relay.calls_mean, o.fixed.calls_mean, "calls"),
            (o.relay.calls_p(0.95), o.fixed.calls_p(0.95), "calls"),
            (o.relay.delay_p(0.50), o.fixed.delay_p(0.50), "s"),
            (o.relay.delay_p(0.95), o.fixed.delay_p(0.95), "s"),
            (o.relay.delay_p(0.99), o.fixed.delay_p(0.99), "s"),
            (f.relay.delay_p(0.95), f.fixed.delay_p(0.95), "s"),
        )
        return dict(zip(HEADLINE, figures, strict=True))

    def target_met(self) -> bool:
        o = self.overall
        return o.relay.calls_mean <= 0.5 * o.fixed.calls_mean and o.relay.delay_p(
            0.95
        ) <= o.fixed.delay_p(0.95)


HEADLINE = (
    "schedule_calls_per_task_mean",
    "schedule_calls_per_task_p95",
    "schedule_delay_p50",
    "schedule_delay_p95",
    "schedule_delay_p99",
    "schedule_failed_delay_p95",
)

ROW_ORDER = (
    "all but failed",
    *(f.name for f in FAMILIES),
    "retried",
    "relax queue",
    "no percentage",
    "peak hours",
    *(f"pace {name}" for name in PACES if name != "linear"),
    "failed (30 s grace)",
)


def simulate(
    tasks: int = 5000,
    seed: int = 1,
    policy: PollPolicy = POLICY,
    nonlinear: float = NONLINEAR_SHARE,
) -> Report:
    rows = {name: Row(name) for name in ROW_ORDER}
    for task in make_workload(tasks, seed, nonlinear):
        fixed_calls, fixed_at = poll(task, policy, FIXED_INTERVAL)
        relay_calls, relay_at = poll(task, policy, None)
        if task.outcome == "failed":
            names = ["failed (30 s grace)"]
        else:
            names = ["all but failed", task.family]
            if task.outcome == "retried":
                names.append("retried")
            if task.relax:
                names.append("relax queue")
            if not task.says_progress and task.family != "sync":
                names.append("no percentage")
            if task.peak:
                names.append("peak hours")
            if task.pace != "linear" and task.says_progress:
                names.append(f"pace {task.pace}")
        for name in names:
            rows[name].fixed.add(fixed_calls, fixed_at - task.completes_at)
            rows[name].relay.add(relay_calls, relay_at - task.completes_at)
    return Report(tasks, seed, rows)


def _cell(fixed: float, relay: float, digits: int) -> str:
    return f"{fixed:>6.{digits}f} {relay:>6.{digits}f}"


def render(report: Report) -> list[str]:
    head = (
        f"{'':<20}{'':>6}  {'calls/task mean':>13}  {'calls/task p95':>13}  "
        f"{'delay p50 s':>13}  {'delay p95 s':>13}  {'delay p99 s':>13}"
    )
    sub = f"{'kind':<20}{'tasks':>6}" + "  " + "  ".join(["fixed  relay"] * 5)
    lines = [head, sub]
    for row in report.rows.values():
        if not row.tasks:
            continue
        f, r = row.fixed, row.relay
        lines.append(
            f"{row.name:<20}{row.tasks:>6}  "
            + "  ".join(
                [
                    _cell(f.calls_mean, r.calls_mean, 1),
                    _cell(f.calls_p(0.95), r.calls_p(0.95), 0),
                    _cell(f.delay_p(0.50), r.delay_p(0.50), 2),
                    _cell(f.delay_p(0.95), r.delay_p(0.95), 2),
                    _cell(f.delay_p(0.99), r.delay_p(0.99), 2),
                ]
            )
        )
    lines.append(
        "delay = relay learns the final answer - the upstream's answer became final; "
        "'all but failed' leaves out tasks that end failed (their row includes the grace)"
    )
    met = "met" if report.target_met() else "NOT met"
    lines.append(
        "target (relay calls mean <= 0.5 x fixed-5s, relay delay p95 <= fixed-5s delay p95): " + met
    )
    for name, (value, fixed, unit) in report.headline().items():
        ratio = value / fixed if fixed else math.nan
        lines.append(f"{name} {value:.2f} {unit} ({ratio:.2f} of fixed-5s)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.schedule_sim", description=__doc__)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--nonlinear",
        type=float,
        default=NONLINEAR_SHARE,
        help="share of tasks whose percentage does not move linearly (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.tasks < 1 or not 0 <= args.nonlinear <= 1:
        parser.error("--tasks must be positive and --nonlinear within 0..1")
    for line in describe_workload(args.nonlinear):
        print(line)
    print(f"tasks {args.tasks}, seed {args.seed}")
    print()
    for line in render(simulate(args.tasks, args.seed, nonlinear=args.nonlinear)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
