"""The callback benchmark's pure parts: its task mix and how a row of its table is counted."""

from __future__ import annotations

import math

import pytest

from bench.callbacks import FULL, TINY, UPSTREAM, Copy, Mode, draw_mix, families, row_for


def _copy(run: str, plan: int, ends_at: float) -> Copy:
    return Copy(run, plan, "imagine", created_at=ends_at - 10, ends_at=ends_at)


COPIES = {
    "a0": _copy("callbacks", 0, 100.0),
    "a1": _copy("callbacks", 1, 200.0),
    "b0": _copy("lost", 0, 100.0),
    "b1": _copy("lost-callback", 1, 200.0),
    "p0": _copy("polling", 0, 100.0),
    "p1": _copy("polling", 1, 200.0),
}
CALLS = {"a0": 2, "a1": 3, "b0": 4, "b1": 2, "p0": 10, "p1": 30}


@pytest.mark.parametrize(
    ("runs", "ended", "tasks", "calls", "baseline", "delays"),
    [
        (["callbacks"], {"a0": 100.5, "a1": 200.25}, 2, 5, 40, [0.5, 0.25]),
        # The lost tenth is held against the bare client's calls on its own plans only.
        (["lost"], {"b0": 129.0}, 1, 4, 10, [29.0]),
        (["lost", "lost-callback"], {"b1": 201.0}, 2, 6, 40, [1.0]),
        (["polling"], {"p0": 104.0, "p1": 201.0}, 2, 40, 40, [4.0, 1.0]),
    ],
)
def test_row_counts_calls_delays_and_the_same_plans_baseline(
    runs: list[str],
    ended: dict[str, float],
    tasks: int,
    calls: int,
    baseline: int,
    delays: list[float],
) -> None:
    row = row_for("x", COPIES, runs, CALLS, ended)
    assert (row.tasks, row.calls, row.baseline_calls) == (tasks, calls, baseline)
    assert row.delays == pytest.approx(delays)
    assert row.missing == tasks - len(delays)
    assert row.ratio == pytest.approx(calls / baseline)


def test_a_row_of_no_tasks_has_no_ratio() -> None:
    row = row_for("x", COPIES, ["nothing"], CALLS, {})
    assert row.tasks == 0 and math.isnan(row.ratio)


@pytest.mark.parametrize("mode", [FULL, UPSTREAM, TINY])
def test_the_mix_is_reproducible_and_within_its_families(mode: Mode) -> None:
    specs = draw_mix(mode)
    assert specs == draw_mix(mode)
    assert len(specs) == mode.tasks
    ranges = {f.name: (f.low, f.high) for f in families(mode.video_high)}
    relax_bound = (5 + (600 if mode.relax_share else 0)) * mode.scale
    for spec in specs:
        low, high = ranges[spec.family]
        assert low * mode.scale <= spec.fields["duration_seconds"] <= high * mode.scale + 1e-9
        assert 0 <= spec.fields["queue_seconds"] <= relax_bound
        assert 0 <= spec.offset <= mode.spread * mode.scale


def test_only_the_upstream_durations_wait_in_a_relax_queue() -> None:
    def longest_queue(mode: Mode) -> float:
        return float(max(s.fields["queue_seconds"] for s in draw_mix(mode)))

    assert longest_queue(FULL) <= 5
    assert longest_queue(UPSTREAM) > 60


def test_the_mix_meets_every_family() -> None:
    assert {s.family for s in draw_mix(FULL)} == {f.name for f in families(90)}
