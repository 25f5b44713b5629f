"""The collector settings a relay process runs with, each checked in a fresh interpreter
(the test session's own collector is left as it is)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def in_fresh_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_start_up_objects_are_frozen_and_young_passes_wait_for_the_threshold() -> None:
    out = in_fresh_python(
        """
        import gc
        from relay.gc_tuning import THRESHOLD, tune_for_throughput
        before = gc.get_threshold()
        tune_for_throughput()
        kept = gc.get_threshold() == (THRESHOLD, *before[1:])
        print(before[0], kept, gc.get_freeze_count() > 1000)
        """
    )
    assert out == "700 True True"


def test_cyclic_garbage_is_still_collected_once_the_threshold_is_passed() -> None:
    out = in_fresh_python(
        """
        import gc, weakref
        from relay.gc_tuning import THRESHOLD, tune_for_throughput
        tune_for_throughput()

        class Node:
            pass

        def cycle():
            a, b = Node(), Node()
            a.other, b.other = b, a
            return weakref.ref(a)

        first = cycle()
        alive_early = first() is not None
        keep = [[] for _ in range(THRESHOLD + 1000)]  # allocations past the threshold
        print(alive_early, first() is None)
        """
    )
    assert out == "True True"
