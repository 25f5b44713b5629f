"""The benchmarks still run: each one's tiny mode exits 0 and prints figure lines.

No timing is asserted: these machines are small and shared. The real figures
come from `make bench`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import available
from bench._common import RESULT_LINE

REPO = Path(__file__).resolve().parents[2]
NAMES = available()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", NAMES)
def test_tiny_benchmark_runs_and_prints_figures(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RELAY_REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--only", name],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout.split("# every figure", 1)[1]
    figures = [line for line in summary.splitlines() if line.strip()]
    assert figures, done.stdout[-3000:]
    for line in figures:
        assert RESULT_LINE.match(line), f"not `name value unit (...)`: {line!r}"


def test_result_line_form() -> None:
    assert RESULT_LINE.match("polling_calls_per_s_100k 8123 calls/s (0.62x bare)")
    assert RESULT_LINE.match("memory_per_tracked_task 1.2e+03 bytes (target < 1024 B: MISSED)")
    assert not RESULT_LINE.match("polling 8123 calls/s")
    assert not re.match(RESULT_LINE, "name value unit (note)")
