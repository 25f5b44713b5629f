"""The benchmarks' stand-in servers, each run in a process of its own on loopback.

    python -m bench._servers upstream --port P [--delay S] [--log-polls]
    python -m bench._servers receiver --port P [--record]

`upstream` answers `POST /api/v1/fetch` at once: `processing 50%` for any task,
or, for tasks given a plan (`POST /plan`), `processing` with a percentage that
moves linearly until the planned end and `finished` from then on (it notes
when it first served `finished` for each task). It counts calls and, per task
id, the requests in flight at once: `max_concurrency` above 1 means one task
was polled twice at the same time. `--delay` holds each answer that long, so
requests really overlap in time; `--log-polls` keeps every poll's time per task.

`receiver` answers every POST with 204 and counts them; with `--record` it
notes when the first non-progress webhook of each task arrived.

Both print `READY` once listening and stop on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

HOST = "127.0.0.1"
API_KEY = "bench-upstream-key"


class Upstream:
    def __init__(self, *, delay: float, log_polls: bool) -> None:
        self.delay = delay
        self.log_polls = log_polls
        self.calls = 0
        self.refused = 0
        self.inflight: dict[str, int] = {}
        self.inflight_ports: dict[int, int] = {}  # requests in flight per client port
        self.max_concurrency = 0
        self.overlaps = 0  # requests that started while another for the same task was in flight
        self.plan: dict[str, tuple[float, float]] = {}
        self.first_finished: dict[str, float] = {}
        self.polls: defaultdict[str, list[float]] = defaultdict(list)

    async def fetch(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("authorization") != API_KEY:
            self.refused += 1
            return web.Response(status=401, body=b"{}", content_type="application/json")
        task_id = json.loads(body)["task_id"]
        self.calls += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        port = int(peer[1]) if peer else 0
        self.inflight_ports[port] = self.inflight_ports.get(port, 0) + 1
        count = self.inflight.get(task_id, 0) + 1
        self.inflight[task_id] = count
        if count > 1:
            self.overlaps += 1
        if count > self.max_concurrency:
            self.max_concurrency = count
        try:
            now = time.time()
            if self.log_polls:
                self.polls[task_id].append(now)
            if self.delay:
                await asyncio.sleep(self.delay)
            answer = self.answer(task_id, now)
        finally:
            left = self.inflight[task_id] - 1
            if left:
                self.inflight[task_id] = left
            else:
                del self.inflight[task_id]
            if self.inflight_ports[port] > 1:
                self.inflight_ports[port] -= 1
            else:
                del self.inflight_ports[port]
        return web.Response(body=answer, content_type="application/json")

    def answer(self, task_id: str, now: float) -> bytes:
        planned = self.plan.get(task_id)
        if planned is None:
            return b'{"task_id":"%s","status":"processing","percentage":"50"}' % task_id.encode()
        start, end = planned
        if now >= end:
            self.first_finished.setdefault(task_id, now)
            base = "https://cdn.midjourney.com/" + task_id[:8]
            return json.dumps(
                {
                    "task_id": task_id,
                    "status": "finished",
                    "percentage": "100",
                    "task_type": "imagine",
                    "model": "midjourney",
                    "original_image_url": f"{base}/grid_0.png",
                    "image_urls": [f"{base}/0_{i}.png" for i in range(4)],
                }
            ).encode()
        percentage = int(100 * (now - start) / (end - start)) if end > start else 99
        return (
            b'{"task_id":"%s","status":"processing","percentage":"%d","task_type":"imagine",'
            b'"model":"midjourney"}' % (task_id.encode(), max(0, min(99, percentage)))
        )

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "calls": self.calls,
                "refused": self.refused,
                "max_concurrency": self.max_concurrency,
                "overlaps": self.overlaps,
                "in_flight": sum(self.inflight.values()),
                "in_flight_ports": self.inflight_ports,
                "time": time.time(),
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        self.calls = self.refused = self.max_concurrency = self.overlaps = 0
        self.polls.clear()
        self.first_finished.clear()
        return web.json_response({})

    async def set_plan(self, request: web.Request) -> web.Response:
        tasks: dict[str, list[float]] = (await request.json())["tasks"]
        self.plan.update({task_id: (s, e) for task_id, (s, e) in tasks.items()})
        return web.json_response({"planned": len(self.plan)})

    async def finished(self, request: web.Request) -> web.Response:
        return web.json_response(self.first_finished)

    async def poll_log(self, request: web.Request) -> web.Response:
        return web.json_response(self.polls)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/fetch", self.fetch)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/reset", self.reset)
        app.router.add_post("/plan", self.set_plan)
        app.router.add_get("/finished", self.finished)
        app.router.add_get("/polls", self.poll_log)
        return app


class Receiver:
    def __init__(self, *, record: bool) -> None:
        self.record = record
        self.count = 0
        self.bytes = 0
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.count += 1
        self.bytes += len(body)
        if self.record:
            now = time.time()
            event: dict[str, Any] = json.loads(body)
            if event.get("type") != "task.progress":
                task_id = event["data"]["task_id"]
                if task_id in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[task_id] = now
        return web.Response(status=204)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "count": self.count,
                "bytes": self.bytes,
                "duplicates": self.duplicates,
                "time": time.time(),
            }
        )

    async def arrived(self, request: web.Request) -> web.Response:
        return web.json_response(self.arrivals)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/arrivals", self.arrived)
        app.router.add_post("/{tail:.*}", self.hook)
        return app


async def serve(app: web.Application, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST, port, backlog=2048).start()
    print("READY", port, flush=True)
    await stop.wait()
    await runner.cleanup()


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
    if args.kind == "upstream":
        app = Upstream(delay=args.delay, log_polls=args.log_polls).app()
    else:
        app = Receiver(record=args.record).app()
    import uvloop

    uvloop.run(serve(app, args.port))


if __name__ == "__main__":
    main()
