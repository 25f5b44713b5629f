"""A proxy-like front: a raw HTTP/1.1 server that puts every answer on the wire as told.

Real servers behind CDNs and reverse proxies chunk their answers, split them
across reads, compress them, close idle keep-alive connections, trickle and
speak TLS. `Front` does all of that in front of any handler, and `Forward`
is the handler that hands each request to a server behind it, as a reverse
proxy would: so the simulator and the tests' scripted upstream both keep
their own HTTP server and gain the front's manners.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aiohttp

from relay.simulator.framing import FRAMING_HEADER, Framing, wire

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1 << 20
# Not forwarded either way: each hop frames and routes its own message.
_HOP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "accept-encoding",
        FRAMING_HEADER,
    }
)


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: Sequence[tuple[str, str]]
    body: bytes
    framing: Framing | None = None  # None: the front's next framing in turn


# None: close the connection without answering anything.
Handler = Callable[[Request], Awaitable[Answer | None]]


def parse_head(raw: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, target and lower-cased headers of a request head; ValueError if malformed."""
    lines = raw.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"unsupported version {version}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"malformed header line {line!r}")
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection, None when the client closed it first."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise ValueError("connection closed inside a request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise ValueError("request head too long") from None
    method, target, headers = parse_head(raw)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ValueError("chunked request bodies are not supported")
    length = int(headers.get("content-length", "0"))
    if not 0 <= length <= _MAX_BODY:
        raise ValueError("request body too large")
    return Request(method, target, headers, await reader.readexactly(length))


class Front:
    """Serves `handler` on host:port, framing each answer with its own or the next of `framings`.

    `idle_timeout` closes a kept-alive connection on which no request came for that
    long; `drop_reused` closes a connection unanswered when a second request comes
    on it (the race in which a server closes an idle connection just as the client
    reuses it). Counters say what happened, for tests to assert on.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        framings: Sequence[Framing] = (Framing(),),
        idle_timeout: float | None = None,
        drop_reused: bool = False,
    ) -> None:
        if not framings:
            raise ValueError("framings: at least one")
        self.handler = handler
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        self.drop_reused = drop_reused
        self._framings = itertools.cycle(framings)
        self._server: asyncio.Server | None = None
        self._conversations: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.answers = 0
        self.idle_closes = 0
        self.dropped = 0  # requests closed unanswered

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, ssl=self.ssl_context, limit=_MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conversations):
                task.cancel()
            await asyncio.gather(*self._conversations, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._conversations.add(task)
        try:
            await self._converse(reader, writer)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # a client that went away or spoke nonsense: the connection just ends
        except asyncio.CancelledError:
            # Only `stop` cancels a conversation; ending it quietly keeps asyncio's
            # stream callback from logging the cancellation as an error.
            if self._server is not None and self._server.is_serving():
                raise
        finally:
            self._conversations.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while True:
            try:
                request = await asyncio.wait_for(read_request(reader), self.idle_timeout)
            except TimeoutError:
                self.idle_closes += 1
                return
            if request is None:
                return
            if served and self.drop_reused:
                self.dropped += 1
                return
            answer = await self.handler(request)
            if answer is None:
                self.dropped += 1
                return
            framing = answer.framing or next(self._framings)
            await _send(writer, wire(answer.status, answer.headers, answer.body, framing), framing)
            self.answers += 1
            served += 1
            if framing.closes:
                return


async def _send(writer: asyncio.StreamWriter, writes: list[bytes], framing: Framing) -> None:
    # The head goes with the first piece of the body, as servers usually write it.
    for index, data in enumerate(writes):
        if index > 1 and framing.gap:
            await asyncio.sleep(framing.gap)
        writer.write(data)
        await writer.drain()


class Forward:
    """A `Handler` that hands each request to the server at `base_url`, as a reverse proxy does.

    That server may choose an answer's framing with the `FRAMING_HEADER`; when it
    drops a connection, the front drops the client's.
    """

    def __init__(self, base_url: str, *, timeout: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, request: Request) -> Answer | None:
        if self._session is None:
            # No Accept-Encoding of its own: the server behind answers plain, the front encodes.
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, skip_auto_headers=("Accept-Encoding", "User-Agent")
            )
        headers = {k: v for k, v in request.headers.items() if k not in _HOP}
        try:
            async with self._session.request(
                request.method,
                self.base_url + request.target,
                data=request.body,
                headers=headers,
                allow_redirects=False,
            ) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            return None
        chosen = response.headers.get(FRAMING_HEADER)
        kept = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP]
        framing = None if chosen is None else Framing.parse(chosen)
        return Answer(response.status, kept, body, framing)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
