"""One relay worker process for the benchmarks, with a chosen upstream transport.

    python -m bench._poll_worker [--transport aiohttp|httpx|httpx-aiohttp]

Settings come from the environment, as for `relay worker`. The worker is
built by the product's own `workers.worker.startup` (the Poller, the
Deliverer and the metrics loop, exactly as `relay worker` builds them), under
uvloop, the product's logging and its collector settings (relay.gc_tuning),
as `relay worker` runs it; only the host's periodic jobs (the report and
heartbeat, the sweep) are left out. With a
transport other than aiohttp, the Poller's transport is swapped before its
loop has made a single call (and httpx's per-request INFO lines are
silenced). Prints `READY`; SIGTERM runs the product's
`shutdown`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import Any

from relay import gc_tuning, logs
from relay.settings import REQUIRED_BY, load_settings
from workers.worker import shutdown, startup


def transport_for(name: str, max_connections: int) -> Any:
    from bench._httpx_transport import HttpxTransport
    from relay.outbound import AiohttpTransport

    if name == "aiohttp":
        return AiohttpTransport(max_connections=max_connections)
    if name == "httpx":
        return HttpxTransport.plain(max_connections)
    if name == "httpx-aiohttp":
        return HttpxTransport.over_aiohttp()
    raise SystemExit(f"unknown transport {name}")


async def run(transport: str) -> None:
    settings = load_settings(require=REQUIRED_BY["worker"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker = await startup(settings)
    # startup() has created the loops' tasks but none has run yet: nothing awaited since.
    if transport != "aiohttp":
        replacement = transport_for(transport, settings.poll_concurrency)
        original = worker.poller.upstream.transport
        worker.poller.upstream.transport = replacement
        worker.transports = (replacement, *worker.transports[1:])
        await original.close()
    lag = asyncio.create_task(_watch_lag(stop)) if os.environ.get("RELAY_BENCH_LAG") else None
    print("READY", flush=True)
    await stop.wait()
    if lag is not None:
        await lag
    await shutdown(worker)


async def _watch_lag(stop: asyncio.Event) -> None:
    """Diagnostics (RELAY_BENCH_LAG=1): log each time the event loop answers > 5 ms late."""
    import sys
    import time

    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        late = time.perf_counter() - before - 0.01
        if late > 0.005:
            print(
                f"loop lag {late * 1000:.1f} ms at {time.time():.3f}", file=sys.stderr, flush=True
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._poll_worker")
    parser.add_argument(
        "--transport", default="aiohttp", choices=["aiohttp", "httpx", "httpx-aiohttp"]
    )
    args = parser.parse_args()
    settings = load_settings(require=REQUIRED_BY["worker"])
    logs.setup(settings.log_level)
    # httpx logs every request at INFO; the product never runs it, so its lines would
    # only weigh on the httpx figures.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import uvloop

    gc_tuning.tune_for_throughput()  # as `relay worker` does
    uvloop.run(run(args.transport))


if __name__ == "__main__":
    main()
