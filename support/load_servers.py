"""The benchmarks' stand-ins: a counting upstream and a counting receiver, built for load.

Each is a `support.servers.Server`, run by bench/_servers.py in a process of its own so that
its CPU is not the relay's. Unlike the tests' stand-ins they keep counts, not every request:
a run sends hundreds of thousands.

`LoadUpstream` answers `POST /api/v1/fetch` at once: `processing 50%` for any task, or, for
tasks given a plan (`POST /plan`), `processing` with a percentage that moves linearly until
the planned end and `finished` from then on (it notes when it first served `finished` for
each task). It counts calls and, per task id, the requests in flight at once:
`max_concurrency` above 1 means one task was polled twice at the same time. `delay` holds
each answer that long, so requests really overlap in time; `log_polls` keeps every poll's
time per task.

`CountingReceiver` answers every POST with 204 and counts them; with `record` it notes when
the first non-progress webhook of each task arrived.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

from support.payloads import finished_grid
from support.servers import Server

API_KEY = "bench-upstream-key"


class LoadUpstream(Server):
    backlog = 2048

    def __init__(self, port: int, *, delay: float = 0.0, log_polls: bool = False) -> None:
        super().__init__(port=port)
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
        self.app.router.add_post("/api/v1/fetch", self.fetch)
        self.app.router.add_get("/stats", self.stats)
        self.app.router.add_post("/reset", self.reset)
        self.app.router.add_post("/plan", self.set_plan)
        self.app.router.add_get("/finished", self.finished)
        self.app.router.add_get("/polls", self.poll_log)

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
        # `processing` answers are most of a run's calls: formatted bytes, not json.dumps,
        # keep the stand-in's CPU per call below the relay's.
        planned = self.plan.get(task_id)
        if planned is None:
            return b'{"task_id":"%s","status":"processing","percentage":"50"}' % task_id.encode()
        start, end = planned
        if now >= end:
            self.first_finished.setdefault(task_id, now)
            return json.dumps(finished_grid(task_id)).encode()
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


class CountingReceiver(Server):
    backlog = 2048

    def __init__(self, port: int, *, record: bool = False) -> None:
        super().__init__(port=port)
        self.record = record
        self.count = 0
        self.bytes = 0
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self.app.router.add_get("/stats", self.stats)
        self.app.router.add_get("/arrivals", self.arrived)
        self.app.router.add_post("/{tail:.*}", self.hook)

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
