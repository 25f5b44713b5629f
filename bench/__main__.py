"""Run every benchmark in sequence: `make bench` = `.venv/bin/python -m bench`.

    .venv/bin/python -m bench [--tiny] [--only NAME ...]

Each benchmark runs in a process of its own (`python -m bench.NAME`), prints
its tables, and ends with one line per figure, `name value unit (note)`;
this runner passes their output through and repeats every figure line at the
end. `--tiny` runs each at a tiny size in a few seconds (the smoke test);
`--only` picks benchmarks by name (repeatable). `bench.callbacks` runs
after them, `bench.schedule_sim` last when it is there. Exit status: 1 if
any benchmark failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time

from bench._common import BENCHMARKS, REPO, RESULT_LINE

# One feature's benchmarks, after the general ones: callbacks plays its run in real time.
FEATURES = ("callbacks",)
EXTRA = ("schedule_sim",)  # run when present; no --tiny of its own
TINY_ARGS = {"schedule_sim": ["--tasks", "200"]}


def available() -> list[str]:
    """Every benchmark this runner knows, in the order it runs them."""
    names = [*BENCHMARKS, *FEATURES]
    for name in EXTRA:
        if importlib.util.find_spec(f"bench.{name}") is not None:
            names.append(name)
    return names


def run_one(name: str, tiny: bool) -> tuple[int, list[str], float]:
    argv = [sys.executable, "-m", f"bench.{name}"]
    if tiny:
        argv += TINY_ARGS.get(name, ["--tiny"])
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert process.stdout is not None
    figures = []
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if RESULT_LINE.match(line.rstrip("\n")):
            figures.append(line.rstrip("\n"))
    return process.wait(), figures, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="every benchmark at a tiny size")
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this one (repeatable): {', '.join(names)}",
    )
    args = parser.parse_args(argv)
    chosen = [n for n in names if not args.only or n in args.only]
    summary: list[str] = []
    failed: list[str] = []
    for name in chosen:
        print(f"\n# bench.{name}{' (tiny)' if args.tiny else ''}", flush=True)
        code, figures, seconds = run_one(name, args.tiny)
        print(f"# bench.{name}: exit {code} in {seconds:.0f} s", flush=True)
        if code != 0 or not figures:
            failed.append(name)
        summary.extend(figures)
    print("\n# every figure")
    for line in summary:
        print(line)
    if failed:
        print(f"\n# failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
