"""`relay simulator --proxy-like`: the simulator behind a front that frames like a real CDN.

The simulator's own app is served by uvicorn on a private loopback port and
reached only through the `Front`, which chunks, splits, compresses and
trickles its answers in turn, closes idle keep-alive connections and, given a
certificate, speaks TLS.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import uvicorn

from relay.simulator.app import create_app
from relay.simulator.framing import PROXY_LIKE
from relay.simulator.front import Forward, Front

# Shorter than any poll interval the relay uses, so idle connections are really closed
# between its polls, as CDNs and load balancers do with theirs.
IDLE_SECONDS = 2.0


def server_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


async def serve(
    host: str,
    port: int,
    *,
    api_key: str | None,
    speed: float,
    strict: bool,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve until uvicorn is told to stop (SIGINT or SIGTERM)."""
    inner = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    inner.bind(("127.0.0.1", 0))
    inner.listen()  # so the front's first requests wait in the backlog until uvicorn is up
    app = create_app(api_key=api_key, speed=speed, strict=strict)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    forward = Forward(f"http://127.0.0.1:{inner.getsockname()[1]}")
    front = Front(
        forward,
        host=host,
        port=port,
        ssl_context=tls,
        framings=PROXY_LIKE,
        idle_timeout=IDLE_SECONDS,
    )
    await front.start()
    try:
        await server.serve(sockets=[inner])
    finally:
        await front.stop()
        await forward.close()


def run(
    host: str,
    port: int,
    *,
    api_key: str | None,
    speed: float,
    strict: bool,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> None:
    tls = server_context(certfile, keyfile) if certfile else None
    asyncio.run(serve(host, port, api_key=api_key, speed=speed, strict=strict, tls=tls))
