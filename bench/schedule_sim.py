"""How many upstream calls the poll schedule spends, and how late it learns that a task ended.

    .venv/bin/python -m bench.schedule_sim [--tasks 5000] [--seed 1]
        [--workload smooth --workload jumpy ...] [--sweep 1,2,3]

A simulated clock, no sleeping and no I/O: every task of a synthetic workload (its
distribution is printed by every run and follows shared/upstream/NOTES.md) is polled
twice, once by the relay's own schedule and once every 5 seconds from registration, as a
client polling for itself would. Each poll at `t` seconds after registration asks the
upstream simulator's pure plan for its answer (`relay.simulator.plans.answer(plan, t)`,
its percentage reshaped by the workload's progress model), reads it with
`relay.core.normalize.normalize` and feeds it to `relay.core.lifecycle.observe`, exactly
as the worker does: the first poll at once, the next one `step.delay` later, until the
step is final. The fixed schedule runs the same lifecycle but always waits 5 s.

Workloads (`--workload`, repeatable; the default is smooth and jumpy):
- smooth: the percentage rises linearly, a tenth of tasks otherwise (steps, ease-in/out);
- jumpy: as Midjourney's does, a handful of uneven jumps (0, 15, 31, 46, 62, 78, 93) at
  irregular times, with long flat stretches, and a share that goes from some value
  straight to `finished`; the issue's target is set on this one;
- jumpy-harsh: a second variant, to check nothing is tuned to the first: fewer and
  clumpier jumps, more straight to the end, twice the relax queue, longer peaks, and a
  tenth of tasks up to a fifth faster than the documented shortest duration.

Figures:
- calls: upstream fetches per task, registration to final.
- delay: the moment the relay's poll makes the task final minus the moment the upstream's
  answer became final (`final_at` of the plan's timeline). Tasks that end `failed` are
  reported on their own row and left out of the overall delay figures: the failed grace
  (RELAY_FAILED_GRACE, 30 s here) deliberately delays believing a failure, whatever the
  schedule.

Targets (the issue's): in every family the relay's p50, p95 and p99 delay no worse than
fixed 5 s polling's, at no more than 0.5x its calls overall. `--sweep` runs the chosen
workloads over several seeds and prints one line per run with the targets it meets.
"""

from __future__ import annotations

import argparse
import math
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

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
from support.stats import percentile

K = TypeVar("K")

FIXED_INTERVAL = 5.0
POLICY = PollPolicy(min_interval=5.0, max_interval=120.0, failed_grace=30.0)
T0 = 1_764_410_400.0  # registration of every task, 2025-11-29T10:00:00Z
DEADLINE = 3 * 3600.0
TARGET_CALLS = 0.5  # the relay's calls at most this share of fixed polling's, overall
QUANTILES = (50, 95, 99)


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
    Family("synchronous", 10, ("imagine",), ("flux-schnell", "flux-pro-ultra"), 0, 0, "sync"),
    Family("seed", 6, ("seed",), ("midjourney",), 5, 15, "seed"),
    Family("describe", 12, ("describe", "shorten"), ("midjourney",), 10, 30, "describe"),
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
        "imagine",
        44,
        ("imagine", "reroll", "variation-1", "variation-strong", "blend"),
        ("midjourney", "niji-6", "flux-pro"),
        30,
        90,
        "grid",
    ),
    Family("video", 10, ("imagine-video", "imagine-video-extend"), ("kling-v2",), 60, 300, "video"),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)

# Shared by every workload, of the asynchronous tasks (all but `synchronous`):
FAILED_SHARE = 0.08  # end `failed` for good, after processing (the upstream's retries spent)
RETRIED_SHARE = 0.10  # imagine tasks only, as the simulator: fail half-way, retried, finish
UNKNOWN_WORD_SHARE = 0.05  # report `retrying` (a word the relay does not know) while processing
RELAX_MAX = 600.0
STAGED_MAX = 2.0  # `staged`, uniform 0..2 s (the simulator's)
SHORT_QUEUE_MAX = 5.0  # `pending` outside the relax queue, uniform 0..5 s
STARTING = (1.0, 5.0)  # `starting`, uniform
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


# Smooth workload: how the percentage moves with time. The simulator's is linear; a share
# `nonlinear` of the tasks that report a percentage move otherwise, split as the weights say.
PACES: dict[str, tuple[float, Callable[[float], float]]] = {
    "linear": (0, lambda x: x),  # weight: 1 - nonlinear
    "stepped": (0.4, _stepped),  # regular jumps of ~14 points
    "ease-out": (0.3, lambda x: 1 - (1 - x) ** 1.5),  # fast start, slow end
    "ease-in": (0.3, lambda x: x**1.5),  # slow start, fast end
}


@dataclass(frozen=True)
class Workload:
    name: str
    progress: Literal["smooth", "jumpy"]
    relax_share: float = 0.15  # wait in the relax queue, `pending` for 0..RELAX_MAX more
    peak_share: float = 0.25  # peak hours: processing takes 1x..peak_factor longer
    peak_factor: float = 1.5
    fast_share: float = 0.0  # run faster than the documented shortest duration,
    fast_factor: float = 1.0  # down to this share of it
    nonlinear: float = 0.10  # smooth: share of tasks whose percentage is not linear
    jumps: tuple[int, int] = (4, 6)  # jumpy: jumps per processing run, uniform
    clumping: float = 0.7  # jumpy: Dirichlet weight of the gaps; lower = longer flat stretches
    straight_share: float = 0.3  # jumpy: skip the last 1..2 jumps, straight to `finished`

    def pace_weights(self) -> dict[str, float]:
        weights = {name: weight * self.nonlinear for name, (weight, _) in PACES.items()}
        weights["linear"] = 1.0 - self.nonlinear
        return weights


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("smooth", "smooth"),
        Workload("jumpy", "jumpy"),
        Workload(
            "jumpy-harsh",
            "jumpy",
            relax_share=0.30,
            peak_share=0.40,
            peak_factor=2.0,
            fast_share=0.10,
            fast_factor=0.8,
            jumps=(2, 5),
            clumping=0.4,
            straight_share=0.5,
        ),
    )
}
DEFAULT_WORKLOADS = ("smooth", "jumpy")

# One processing run's percentage: (share of the run elapsed, value shown from then on).
Steps = tuple[tuple[float, int], ...]


def jump_steps(rng: random.Random, workload: Workload) -> Steps:
    """A Midjourney-like run: 0, then evenly spaced values at irregular times."""
    count = rng.randint(*workload.jumps)
    values = [int(k * 100 / (count + 0.5)) for k in range(1, count + 1)]
    gaps = [rng.gammavariate(workload.clumping, 1.0) for _ in range(count + 1)]
    total = sum(gaps)
    at = 0.0
    times = []
    for gap in gaps[:-1]:  # the last gap runs from the last jump to the end
        at += gap / total
        times.append(at)
    steps = list(zip(times, values, strict=True))
    if rng.random() < workload.straight_share:
        del steps[len(steps) - rng.randint(1, min(2, len(steps))) :]
    return ((0.0, 0), *steps)


@dataclass(frozen=True)
class SimTask:
    plan: Plan
    family: str
    outcome: str  # "ok", "failed", "retried"
    relax: bool
    peak: bool
    fast: bool
    pace: str  # smooth workload: a PACES name; jumpy: "jumps"
    steps: tuple[Steps, ...]  # jumpy: one per processing phase
    phases: tuple[Phase, ...]
    completes_at: float  # seconds after registration at which the answer becomes final

    @property
    def says_progress(self) -> bool:
        return self.plan.percentage_style in ("plain", "percent")


def _pick(rng: random.Random, weights: Mapping[K, float]) -> K:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def make_task(rng: random.Random, workload: Workload) -> SimTask:
    family = rng.choices(FAMILIES, weights=[f.weight for f in FAMILIES])[0]
    task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    task_type = rng.choice(family.task_types)
    model = rng.choice(family.models)
    style = _pick(rng, STYLE_WEIGHTS)
    jumpy = workload.progress == "jumpy"
    pace = "jumps" if jumpy else _pick(rng, workload.pace_weights())
    if family.shape == "sync":
        plan = Plan(task_id, task_type, model, "sync", 0.0, 0.0, 0.0, 0.0, style)
        return SimTask(plan, family.name, "ok", False, False, False, "linear", (), (), 0.0)
    shape: Shape = family.shape
    if task_type == "shorten":
        shape = "shorten"
    draw = rng.random()
    outcome = "ok"
    if draw < FAILED_SHARE:
        outcome, shape = "failed", "failed"
    elif family.name == "imagine" and draw < FAILED_SHARE + RETRIED_SHARE:
        outcome, shape = "retried", "retried"
    elif rng.random() < UNKNOWN_WORD_SHARE:
        shape = "unknown_word"
    relax = rng.random() < workload.relax_share
    queue = rng.uniform(0, SHORT_QUEUE_MAX) + (rng.uniform(0, RELAX_MAX) if relax else 0.0)
    peak = rng.random() < workload.peak_share
    fast = rng.random() < workload.fast_share
    if fast:
        duration = family.low * rng.uniform(workload.fast_factor, 1.0)
    else:
        duration = rng.uniform(family.low, family.high)
        duration *= rng.uniform(1, workload.peak_factor) if peak else 1
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
    phases = timeline(plan)
    runs = sum(1 for p in phases if p.progress)
    steps = tuple(jump_steps(rng, workload) for _ in range(runs)) if jumpy else ()
    return SimTask(
        plan, family.name, outcome, relax, peak and not fast, fast, pace, steps, phases,
        final_at(plan),
    )  # fmt: skip


def make_workload(tasks: int, seed: int, workload: Workload) -> list[SimTask]:
    rng = random.Random(seed)
    return [make_task(rng, workload) for _ in range(tasks)]


def describe_workload(workload: Workload) -> list[str]:
    lines = [f"workload {workload.name} (seeded; shares are draw probabilities):"]
    for f in FAMILIES:
        span = "finished at the first fetch" if f.shape == "sync" else f"{f.low:g}-{f.high:g} s"
        lines.append(f"  {f.weight:>4g}%  {f.name:<12} {span:<28} {', '.join(f.task_types)}")
    lines += [
        f"  async tasks: {FAILED_SHARE:.0%} end failed; {RETRIED_SHARE:.0%} of imagine tasks "
        f"fail half-way, stay failed {RETRY_SECONDS[0]:g}-{RETRY_SECONDS[1]:g} s, restart from "
        f"0 and finish; {UNKNOWN_WORD_SHARE:.0%} say `retrying` instead of `processing`",
        f"  queue: staged 0-{STAGED_MAX:g} s, pending 0-{SHORT_QUEUE_MAX:g} s, "
        f"{workload.relax_share:.0%} also wait 0-{RELAX_MAX:g} s in the relax queue; "
        f"starting {STARTING[0]:g}-{STARTING[1]:g} s",
        f"  peak hours: {workload.peak_share:.0%} take 1-{workload.peak_factor:g}x the typical "
        "duration"
        + (
            f"; {workload.fast_share:.0%} run {workload.fast_factor:g}-1x the shortest"
            if workload.fast_share
            else ""
        ),
        "  percentage spelling: "
        + ", ".join(f"{k} {v:g}%" for k, v in STYLE_WEIGHTS.items())
        + " (empty/missing: no progress at all)",
    ]
    if workload.progress == "smooth":
        lines.append(
            "  percentage pace (of tasks that send one): "
            + ", ".join(f"{k} {100 * w:.3g}%" for k, w in workload.pace_weights().items())
        )
    else:
        low, high = workload.jumps
        lines.append(
            f"  percentage: 0, then {low}-{high} evenly spaced jumps (e.g. 15, 30, 46, 61, 76, "
            f"92) at irregular times (gamma({workload.clumping:g}) gaps: flat stretches); "
            f"{workload.straight_share:.0%} of runs skip the last 1-2, straight to finished"
        )
    lines.append(
        f"  policy: min {POLICY.min_interval:g} s, max {POLICY.max_interval:g} s, "
        f"failed grace {POLICY.failed_grace:g} s; fixed schedule: every {FIXED_INTERVAL:g} s "
        "from registration"
    )
    return lines


# --- the upstream and the two schedules ------------------------------------------------------


def _progress_position(phases: Sequence[Phase], elapsed: float) -> tuple[int, float] | None:
    """(index of the processing run, share of it elapsed), or None outside processing."""
    start = 0.0
    run = 0
    for phase in phases:
        if elapsed < start + phase.seconds:
            return (run, (elapsed - start) / phase.seconds) if phase.progress else None
        start += phase.seconds
        run += phase.progress
    return None


def _shown(steps: Steps, x: float) -> int:
    value = 0
    for at, step in steps:
        if at > x:
            break
        value = step
    return value


def upstream_answer(task: SimTask, elapsed: float) -> dict[str, object]:
    """The simulator's answer, with the percentage reshaped by the workload's progress."""
    body = answer(task.plan, elapsed)
    if task.pace == "linear" or not task.says_progress or "percentage" not in body:
        return body
    position = _progress_position(task.phases, elapsed)
    if position is None:
        return body
    run, x = position
    if task.steps:
        value = _shown(task.steps[run], x)
    else:
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

    @property
    def calls_ratio(self) -> float:
        return self.relay.calls_mean / self.fixed.calls_mean if self.tasks else math.nan

    def misses(self) -> list[tuple[float, float, float]]:
        """(quantile, relay's delay, fixed's) for each quantile where the relay is later."""
        pairs = [(q, self.relay.delay_p(q), self.fixed.delay_p(q)) for q in QUANTILES]
        return [(q, r, f) for q, r, f in pairs if r > f + 1e-9]


OVERALL = "all but failed"
FAILED_ROW = "failed (30 s grace)"


@dataclass
class Report:
    workload: Workload
    tasks: int
    seed: int
    rows: dict[str, Row]

    @property
    def overall(self) -> Row:
        return self.rows[OVERALL]

    def headline(self) -> dict[str, tuple[float, float, str]]:
        """name -> (relay's value, fixed-5s value, unit)."""
        o, f = self.overall, self.rows[FAILED_ROW]
        figures = (
            (o.relay.calls_mean, o.fixed.calls_mean, "calls"),
            (o.relay.calls_p(95), o.fixed.calls_p(95), "calls"),
            (o.relay.delay_p(50), o.fixed.delay_p(50), "s"),
            (o.relay.delay_p(95), o.fixed.delay_p(95), "s"),
            (o.relay.delay_p(99), o.fixed.delay_p(99), "s"),
            (f.relay.delay_p(95), f.fixed.delay_p(95), "s"),
        )
        prefix = f"schedule_{self.workload.name.replace('-', '_')}_"
        return {prefix + name: figure for name, figure in zip(HEADLINE, figures, strict=True)}

    def family_misses(self) -> dict[str, list[tuple[float, float, float]]]:
        """Families (with tasks) where some delay quantile is later than fixed polling's."""
        rows = (self.rows[name] for name in FAMILY_NAMES)
        return {row.name: row.misses() for row in rows if row.tasks and row.misses()}

    def calls_met(self) -> bool:
        return self.overall.calls_ratio <= TARGET_CALLS

    def target_met(self) -> bool:
        return self.calls_met() and not self.family_misses()

    def verdict(self) -> list[str]:
        """One line per target: met, or by how much it is missed."""
        ratio = self.overall.calls_ratio
        lines = [
            f"target calls overall <= {TARGET_CALLS:g}x fixed-5s: {ratio:.2f}x "
            + ("met" if self.calls_met() else "NOT met")
        ]
        misses = self.family_misses()
        for name in FAMILY_NAMES:
            if not self.rows[name].tasks:
                continue
            missed = misses.get(name)
            if not missed:
                lines.append(f"target {name}: p50/p95/p99 delay <= fixed-5s: met")
                continue
            detail = ", ".join(f"p{q:g} +{r - f:.2f} s ({r:.2f} vs {f:.2f})" for q, r, f in missed)
            lines.append(f"target {name}: p50/p95/p99 delay <= fixed-5s: NOT met, {detail}")
        return lines


HEADLINE = (
    "calls_per_task_mean",
    "calls_per_task_p95",
    "delay_p50",
    "delay_p95",
    "delay_p99",
    "failed_delay_p95",
)

EXTRA_ROWS = ("retried", "relax queue", "no percentage", "peak hours", "faster than documented")


def row_names(workload: Workload) -> tuple[str, ...]:
    paces = [f"pace {name}" for name in PACES if name != "linear"]
    return (
        OVERALL,
        *FAMILY_NAMES,
        *EXTRA_ROWS,
        *(paces if workload.progress == "smooth" else ()),
        FAILED_ROW,
    )


def _rows_of(task: SimTask) -> list[str]:
    if task.outcome == "failed":
        return [FAILED_ROW]
    names = [OVERALL, task.family]
    flags = {
        "retried": task.outcome == "retried",
        "relax queue": task.relax,
        "no percentage": not task.says_progress and task.family != "synchronous",
        "peak hours": task.peak,
        "faster than documented": task.fast,
    }
    names += [name for name, flag in flags.items() if flag]
    if task.pace in PACES and task.pace != "linear" and task.says_progress:
        names.append(f"pace {task.pace}")
    return names


def simulate(
    tasks: int = 5000,
    seed: int = 1,
    workload: Workload = WORKLOADS["jumpy"],
    policy: PollPolicy = POLICY,
) -> Report:
    rows = {name: Row(name) for name in row_names(workload)}
    for task in make_workload(tasks, seed, workload):
        fixed_calls, fixed_at = poll(task, policy, FIXED_INTERVAL)
        relay_calls, relay_at = poll(task, policy, None)
        for name in _rows_of(task):
            rows[name].fixed.add(fixed_calls, fixed_at - task.completes_at)
            rows[name].relay.add(relay_calls, relay_at - task.completes_at)
    return Report(workload, tasks, seed, rows)


def _cell(fixed: float, relay: float, digits: int) -> str:
    return f"{fixed:>6.{digits}f} {relay:>6.{digits}f}"


def render(report: Report) -> list[str]:
    head = (
        f"{'':<23}{'':>6}  {'calls/task mean':>13}  {'calls/task p95':>13}  "
        f"{'delay p50 s':>13}  {'delay p95 s':>13}  {'delay p99 s':>13}"
    )
    sub = f"{'kind':<23}{'tasks':>6}" + "  " + "  ".join(["fixed  relay"] * 5)
    lines = [head, sub]
    for row in report.rows.values():
        if not row.tasks:
            continue
        f, r = row.fixed, row.relay
        lines.append(
            f"{row.name:<23}{row.tasks:>6}  "
            + "  ".join(
                [
                    _cell(f.calls_mean, r.calls_mean, 1),
                    _cell(f.calls_p(95), r.calls_p(95), 0),
                    _cell(f.delay_p(50), r.delay_p(50), 2),
                    _cell(f.delay_p(95), r.delay_p(95), 2),
                    _cell(f.delay_p(99), r.delay_p(99), 2),
                ]
            )
        )
    lines.append(
        "delay = relay learns the final answer - the upstream's answer became final; "
        f"'{OVERALL}' leaves out tasks that end failed (their row includes the grace)"
    )
    lines += report.verdict()
    return lines


def figure_lines(report: Report) -> list[str]:
    lines = []
    for name, (value, fixed, unit) in report.headline().items():
        ratio = value / fixed if fixed else math.nan
        lines.append(f"{name} {value:.2f} {unit} ({ratio:.2f} of fixed-5s)")
    return lines


def sweep_line(report: Report) -> str:
    misses = report.family_misses()
    worst = max(
        (r - f for missed in misses.values() for _, r, f in missed),
        default=0.0,
    )
    families = "all met" if not misses else f"missed in {', '.join(misses)} (by <= {worst:.2f} s)"
    return (
        f"{report.workload.name:<12} seed {report.seed:<3} calls {report.overall.calls_ratio:.2f}x "
        f"({'met' if report.calls_met() else 'NOT met'}); delays per family: {families}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.schedule_sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workload",
        action="append",
        choices=list(WORKLOADS),
        help=f"repeatable (default: {', '.join(DEFAULT_WORKLOADS)})",
    )
    parser.add_argument(
        "--sweep", metavar="SEEDS", help="comma-separated seeds: one summary line per run"
    )
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be positive")
    chosen = [WORKLOADS[name] for name in args.workload or DEFAULT_WORKLOADS]
    if args.sweep:
        try:
            seeds = [int(s) for s in args.sweep.split(",")]
        except ValueError:
            parser.error("--sweep takes comma-separated integers")
        print(f"tasks {args.tasks} per run")
        for workload in chosen:
            for seed in seeds:
                print(sweep_line(simulate(args.tasks, seed, workload)), flush=True)
        return 0
    figures: list[str] = []
    for workload in chosen:
        for line in describe_workload(workload):
            print(line)
        print(f"tasks {args.tasks}, seed {args.seed}")
        print()
        report = simulate(args.tasks, args.seed, workload)
        for line in render(report):
            print(line)
        print(flush=True)
        figures += figure_lines(report)
    for line in figures:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
