"""The cycle collector's settings for a long-running relay process.

CPython starts a young-generation pass of its cycle collector every 700 net
allocations of container objects, and an older pass every tenth of those. A
worker allocates in bursts (a claim of a few hundred tasks, a handful of objects
each; two hundred requests in flight), nearly all freed by reference counting
alone, yet each burst set off passes over whatever was young and alive, and the
older passes walked everything the process had imported: 12-14% of a polling
worker's CPU (bench.polling's worker, 10,000 tracked, timed with `gc.callbacks`).

So what exists once the process is set up (modules, classes, settings) is frozen
out of every pass, and a young pass waits for THRESHOLD net allocations. Cyclic
garbage is still collected, only later: what waits for it is bounded by the
threshold, a few megabytes at most.
"""

from __future__ import annotations

import gc

THRESHOLD = 50_000  # net allocations of tracked objects before a young pass (CPython: 700)


def tune_for_throughput() -> None:
    """Call once the process has imported what it runs, before it starts its work."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(THRESHOLD)
