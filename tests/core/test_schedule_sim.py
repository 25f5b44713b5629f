"""The poll-schedule benchmark (bench/schedule_sim.py): it runs, its harness is sound, and the
schedule meets the issue's target on one fixed workload.

The figures are simulated on a seeded workload with a simulated clock, so they are exact and
repeatable, not timings: 2,000 tasks take about 1.5 s.
"""

from __future__ import annotations

import math
import re

import pytest

from bench import schedule_sim


@pytest.fixture(scope="module")
def small() -> schedule_sim.Report:
    return schedule_sim.simulate(200, seed=3)


def test_a_small_run_gives_finite_figures(small: schedule_sim.Report) -> None:
    assert small.overall.tasks > 150
    for name, (relay, fixed, unit) in small.headline().items():
        assert math.isfinite(relay), name
        assert math.isfinite(fixed), name
        assert relay >= 0
        assert fixed >= 0
        assert unit in ("calls", "s")


def test_the_harness_is_sound(small: schedule_sim.Report) -> None:
    # Synchronous models answer `finished` at the first fetch, polled at once by both.
    sync = small.rows["sync"]
    assert sync.tasks > 0
    assert set(sync.fixed.calls) == set(sync.relay.calls) == {1}
    assert set(sync.fixed.delays) == set(sync.relay.delays) == {0.0}
    # Every 5 s means news within 5 s, for every task that does not end failed...
    fixed = small.overall.fixed
    assert all(0 <= delay < schedule_sim.FIXED_INTERVAL for delay in fixed.delays)
    assert all(0 <= delay < math.inf for delay in small.overall.relay.delays)
    # ...and a failure is believed only after the grace.
    failed = small.rows["failed (30 s grace)"]
    assert failed.tasks > 0
    assert min(failed.fixed.delays + failed.relay.delays) >= schedule_sim.POLICY.failed_grace


def test_main_prints_the_workload_the_table_and_one_line_per_figure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert schedule_sim.main(["--tasks", "200", "--seed", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("workload")
    assert any(line.startswith("all but failed") for line in lines)
    figures = lines[-6:]
    assert [line.split()[0] for line in figures] == list(schedule_sim.HEADLINE)
    for line in figures:
        assert re.fullmatch(r"schedule_\w+ \d+\.\d\d (calls|s) \(\d+\.\d\d of fixed-5s\)", line)


def test_the_target_is_met_on_a_fixed_workload() -> None:
    """The issue's target: at most half the calls of a fixed 5 s schedule, and a p95 delay
    from the upstream's end to the relay's news no worse than that schedule's own p95."""
    report = schedule_sim.simulate(2000, seed=1)
    overall = report.overall
    assert overall.relay.calls_mean <= 0.5 * overall.fixed.calls_mean
    assert overall.relay.delay_p(0.95) <= overall.fixed.delay_p(0.95)
    assert report.target_met()
