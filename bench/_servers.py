"""The benchmarks' stand-in servers (support/load_servers.py), each in a process of its own.

    python -m bench._servers upstream --port P [--delay S] [--log-polls]
    python -m bench._servers receiver --port P [--record]

Both print `READY` once listening and stop on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from support.load_servers import CountingReceiver, LoadUpstream
from support.servers import Server


async def serve(server: Server) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        print("READY", server.port, flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._servers")
    sub = parser.add_subparsers(dest="kind", required=True)
    up = sub.add_parser("upstream")
    up.add_argument("--port", type=int, required=True)
    up.add_argument("--delay", type=float, default=0.0)
    up.add_argument("--log-polls", action="store_true")
    rec = sub.add_parser("receiver")
    rec.add_argument("--port", type=int, required=True)
    rec.add_argument("--record", action="store_true")
    args = parser.parse_args()
    server: Server
    if args.kind == "upstream":
        server = LoadUpstream(args.port, delay=args.delay, log_polls=args.log_polls)
    else:
        server = CountingReceiver(args.port, record=args.record)
    import uvloop

    uvloop.run(serve(server))


if __name__ == "__main__":
    main()
