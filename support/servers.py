"""Real servers on loopback, in the caller's event loop: a scripted upstream, a receiver, a tarpit.

Either may stand behind a proxy-like front (`Fronting`) that frames its answers on the wire
as real servers and proxies do (chunked, split, closed, TLS).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web

from relay.devtools.redis_server import free_port
from relay.simulator.framing import FRAMING_HEADER, Framing
from relay.simulator.front import Forward, Front


@dataclasses.dataclass
class Canned:
    """One scripted answer: a status, a body (JSON-encoded unless bytes), headers, a delay."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0
    framing: Framing | None = None  # with a `Fronting`: how this answer goes on the wire

    def encoded(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


@dataclasses.dataclass(frozen=True)
class Fronting:
    """A proxy-like front (relay.simulator.front) before a test server, and its manners.

    `framings` frame in turn the answers that do not choose their own.
    """

    framings: tuple[Framing, ...] = (Framing(),)
    tls: ssl.SSLContext | None = None
    idle_timeout: float | None = None
    drop_reused: bool = False


class Server:
    """An aiohttp app served on a loopback port of its own, behind a front if given one."""

    backlog = 128  # aiohttp's default; a load generator's stand-in wants more

    def __init__(self, fronting: Fronting | None = None, port: int | None = None) -> None:
        self.app = web.Application()
        self.port = free_port() if port is None else port
        self._runner: web.AppRunner | None = None
        self.front: Front | None = None
        if fronting is not None:
            self.front = Front(
                Forward(f"http://127.0.0.1:{self.port}"),
                port=free_port(),
                ssl_context=fronting.tls,
                framings=fronting.framings,
                idle_timeout=fronting.idle_timeout,
                drop_reused=fronting.drop_reused,
            )

    @property
    def url(self) -> str:
        """Where clients reach it: through its front when it has one."""
        if self.front is not None:
            return self.front.url
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=self.backlog).start()
        if self.front is not None:
            await self.front.start()

    async def stop(self) -> None:
        if self.front is not None:
            await self.front.stop()
            assert isinstance(self.front.handler, Forward)
            await self.front.handler.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ScriptedUpstream(Server):
    """Answers `/api/v1/fetch` per task from a script; the last answer repeats."""

    def __init__(self, api_key: str = "upstream-key", fronting: Fronting | None = None) -> None:
        super().__init__(fronting)
        self.api_key = api_key
        self.scripts: dict[str, list[Canned]] = {}
        self.calls: dict[str, int] = defaultdict(int)
        self.call_times: list[tuple[float, str]] = []  # (monotonic time, task id) of every call
        self.headers_seen: list[dict[str, str]] = []
        self.app.router.add_post("/api/v1/fetch", self._fetch)

    def script(self, task_id: str, *answers: Canned | dict[str, Any]) -> None:
        self.scripts[task_id] = [a if isinstance(a, Canned) else Canned(a) for a in answers]

    async def _fetch(self, request: web.Request) -> web.StreamResponse:
        self.headers_seen.append(dict(request.headers))
        if request.headers.get("authorization") != self.api_key:
            return web.json_response({}, status=401)
        task_id = (await request.json())["task_id"]
        self.calls[task_id] += 1
        self.call_times.append((time.monotonic(), task_id))
        script = self.scripts.get(task_id)
        if not script:
            return web.json_response({"error": "not found"}, status=404)
        answer = script.pop(0) if len(script) > 1 else script[0]
        if answer.delay:
            await asyncio.sleep(answer.delay)
        body = answer.encoded()
        headers = answer.headers
        if answer.framing is not None:
            headers = {**headers, FRAMING_HEADER: answer.framing.text()}
        return web.Response(
            body=body,
            status=answer.status,
            headers=headers,
            content_type=None if answer.headers else "application/json",
        )


@dataclasses.dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver(Server):
    """A webhook receiver: records every POST, when it arrived (monotonic) and its path.

    Answers by `respond(received)` when given, else with the next of `answers` (a `Canned`,
    or a bare status), else 204; a bare status or the 204 waits `delay` seconds first.
    """

    def __init__(
        self,
        respond: Callable[[Received], Canned] | None = None,
        fronting: Fronting | None = None,
    ) -> None:
        super().__init__(fronting)
        self.respond = respond
        self.answers: list[Canned | int] = []
        self.delay = 0.0
        self.received: list[Received] = []
        self.arrivals: list[float] = []
        self.paths: list[str] = []
        self.arrived = asyncio.Condition()
        self.app.router.add_post("/{tail:.*}", self._hook)  # a subclass's own, if it has one

    async def _hook(self, request: web.Request) -> web.Response:
        received = Received(dict(request.headers), await request.read())
        async with self.arrived:
            self.received.append(received)
            self.arrivals.append(time.monotonic())
            self.paths.append(request.path)
            self.arrived.notify_all()
        reply = self._reply(received)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(body=reply.encoded(), status=reply.status, headers=reply.headers)

    def _reply(self, received: Received) -> Canned:
        if self.respond is not None:
            return self.respond(received)
        reply = self.answers.pop(0) if self.answers else 204
        return reply if isinstance(reply, Canned) else Canned(b"", status=reply, delay=self.delay)

    def events(self, task_id: str | None = None) -> list[dict[str, Any]]:
        found = [r.json for r in self.received]
        return [e for e in found if task_id is None or e["data"]["task_id"] == task_id]

    async def wait_for(self, count: int, timeout: float = 10.0, task_id: str | None = None) -> None:
        async def enough() -> None:
            async with self.arrived:
                await self.arrived.wait_for(lambda: len(self.events(task_id)) >= count)

        await asyncio.wait_for(enough(), timeout)


class Tarpit:
    """Accepts connections and never answers; counts them."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted = 0
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._open.add(writer)
        try:
            while await reader.read(65536):
                pass
        finally:
            self._open.discard(writer)
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.close()
        await self._server.wait_closed()
