"""The `relay` command: api, worker, dev, simulator."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from relay import __version__
from relay.settings import REQUIRED_BY, Settings, SettingsError, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except SettingsError as exc:
        print(f"relay: setting {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description=__doc__)
    parser.add_argument("--version", action="version", version=f"journey-relay {__version__}")
    sub = parser.add_subparsers(dest="command")

    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    api.set_defaults(run=run_api)

    worker = sub.add_parser("worker", help="poll the upstream and deliver webhooks")
    worker.set_defaults(run=run_worker)

    dev = sub.add_parser("dev", help="API + worker (+ a private Redis) in one command")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument(
        "--simulate", action="store_true", help="also run the simulator and demo tasks"
    )
    dev.set_defaults(run=run_dev)

    sim = sub.add_parser("simulator", help="a local stand-in for the upstream's fetch endpoint")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8090)
    sim.add_argument("--api-key", default=None, help="the only key accepted (default: any)")
    sim.add_argument("--speed", type=float, default=1.0, help="time runs this many times faster")
    sim.add_argument(
        "--strict", action="store_true", help="404 for tasks not created via /sim/tasks"
    )
    sim.add_argument(
        "--proxy-like",
        action="store_true",
        help="behind a front that chunks, splits, compresses and trickles answers"
        " and closes idle connections, as a CDN does",
    )
    sim.add_argument("--tls-cert", default=None, help="with --proxy-like: serve https (PEM)")
    sim.add_argument("--tls-key", default=None, help="the key of --tls-cert, if not in it")
    sim.set_defaults(run=run_simulator)
    return parser


def check_redis(settings: Settings) -> bool:
    """One clear line and False when Redis does not answer at start."""
    import redis

    from relay.store.redis import ping

    try:
        ping(settings.redis_url)
    except (redis.RedisError, OSError) as exc:
        print(f"relay: cannot reach Redis at {settings.redis_url_redacted}: {exc}", file=sys.stderr)
        return False
    return True


KEEP_ALIVE = 75  # seconds an idle client connection is kept open (see run_api)


def run_api(args: argparse.Namespace) -> int:
    import uvicorn

    from relay import logs
    from relay.api import create_app

    settings = load_settings(require=REQUIRED_BY["api"])
    logs.setup(settings.log_level)
    if not check_redis(settings):
        return 1
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the
    # handler that was there before it: a no-op one makes that a clean exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=20,
        # Longer than clients keep an idle connection (httpx and Node 5 s, load balancers
        # 60 s): a server closing it first races the client's next request on it, which
        # then fails with no answer ("Server disconnected without sending a response").
        timeout_keep_alive=KEEP_ALIVE,
    )
    return 0


def run_worker(args: argparse.Namespace) -> int:
    import workers
    from relay import logs

    settings = load_settings(require=REQUIRED_BY["worker"])
    logs.setup(settings.log_level)
    if not check_redis(settings):
        return 1
    _use_uvloop()
    workers.run(settings)
    return 0


def run_dev(args: argparse.Namespace) -> int:
    from relay.devtools.dev import run

    return int(run(port=args.port, simulate=args.simulate))


def run_simulator(args: argparse.Namespace) -> int:
    from relay import logs
    from relay.simulator import run

    if args.tls_cert and not args.proxy_like:
        print("relay: --tls-cert needs --proxy-like (the front speaks TLS)", file=sys.stderr)
        return 2
    logs.setup("WARNING", json_lines=False)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # see run_api
    serve = run
    if args.proxy_like:
        from functools import partial

        from relay.simulator import proxy_like

        serve = partial(proxy_like.run, certfile=args.tls_cert, keyfile=args.tls_key)
    serve(args.host, args.port, api_key=args.api_key, speed=args.speed, strict=args.strict)
    return 0


def _use_uvloop() -> None:
    try:
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
