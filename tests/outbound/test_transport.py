"""AiohttpTransport against the proxy-like front on loopback: every answer read whole."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.outbound import AiohttpTransport, TransportError
from relay.simulator.framing import PROXY_LIKE, Framing
from relay.simulator.front import Answer, Front, Handler, Request
from tests.outbound import bomb_handler

PAYLOAD = json.dumps(
    {
        "task_id": "550e8400-e29b-41d4-a716-446655440000",
        "status": "finished",
        "image_urls": [f"https://cdn.example/abc/0_{i}.png" for i in range(4)],
        "prompt": "a lighthouse at dusk, " * 40,
    }
).encode()  # about 1.2 KB: many pieces in every framing below

FRAMINGS: dict[str, Framing] = {
    "plain": Framing(),
    "chunked, 64 B 10 ms apart": Framing("chunked", piece=64, gap=0.01),
    "Content-Length, two writes 50 ms apart": Framing("length", split=2, gap=0.05),
    "gzip": Framing(encoding="gzip"),
    "gzip, chunked": Framing("chunked", encoding="gzip", piece=100, gap=0.005),
    "deflate": Framing(encoding="deflate"),
    "deflate, split": Framing(encoding="deflate", split=3, gap=0.02),
    "br": Framing(encoding="br"),
    "br, chunked": Framing("chunked", encoding="br", piece=32, gap=0.005),
    "Connection: close": Framing(close=True),
    "ended by closing the connection": Framing("eof"),
    "a trickle within the timeout": Framing(piece=100, gap=0.02),
    **{f"proxy-like {i}": framing for i, framing in enumerate(PROXY_LIKE)},
}
HEADERS = {"content-type": "application/json"}


def answering(body: bytes = PAYLOAD, framing: Framing | None = None) -> Handler:
    async def handler(request: Request) -> Answer:
        return Answer(200, [("Content-Type", "application/json")], body, framing)

    return handler


@contextlib.asynccontextmanager
async def serving(handler: Handler, **options: Any) -> AsyncIterator[Front]:
    front = Front(handler, **options)
    await front.start()
    try:
        yield front
    finally:
        await front.stop()


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    made = AiohttpTransport()
    yield made
    await made.close()


async def post(transport: AiohttpTransport, front: Front, timeout: float = 5.0, **kw: Any) -> Any:
    return await transport.post(front.url + "/api/v1/fetch", b"{}", HEADERS, timeout, **kw)


@pytest.mark.parametrize("framing", FRAMINGS.values(), ids=FRAMINGS.keys())
async def test_every_framing_is_read_whole(transport: AiohttpTransport, framing: Framing) -> None:
    async with serving(answering(), framings=(framing,)) as front:
        for _ in range(2):  # the second on the kept-alive connection, unless it was closed
            reply = await post(transport, front)
            assert reply.status == 200
            assert reply.body == PAYLOAD
            assert reply.headers.get("content-encoding", "identity") == framing.encoding
    assert front.answers == 2
    assert front.connections == (2 if framing.closes else 1)


@pytest.mark.parametrize(
    ("body", "framing"),
    [
        (b"x" * 1001, Framing()),  # refused from its Content-Length, unread
        (b"x" * 1001, Framing("chunked", piece=64)),
        (b"x" * 1001, Framing("eof")),
        (b"x" * 1001, Framing(split=2, gap=0.02)),
        (b"0" * 50_000, Framing(encoding="gzip")),  # small on the wire, large once decoded
        (b"0" * 50_000, Framing("chunked", encoding="br", piece=16)),
    ],
    ids=["length", "chunked", "eof", "split", "gzip", "br"],
)
async def test_an_answer_over_the_limit_is_too_large(body: bytes, framing: Framing) -> None:
    transport = AiohttpTransport(read_limit=1000)
    try:
        async with serving(answering(body, framing)) as front:
            with pytest.raises(TransportError) as raised:
                await post(transport, front)
            assert raised.value.kind == "too_large"
            # Exactly at the limit is still an answer.
            front.handler = answering(body[:1000], framing)
            assert (await post(transport, front)).body == body[:1000]
    finally:
        await transport.close()


async def peak_memory_while(call: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = await call
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_an_excerpt_is_read_up_to_its_bound_and_a_bomb_costs_no_memory(
    transport: AiohttpTransport,
) -> None:
    async with serving(answering(PAYLOAD)) as front:
        assert (await post(transport, front, excerpt=256)).body == PAYLOAD[:256]
        front.handler = answering(b"ok")
        assert (await post(transport, front, excerpt=256)).body == b"ok"
    async with serving(bomb_handler) as front:
        reply, peak = await peak_memory_while(post(transport, front, excerpt=256))
        assert reply.status == 200 and reply.body == bytes(256)
        assert peak < 8 << 20, f"reading an excerpt of a bomb peaked at {peak} bytes"


async def test_a_bomb_from_the_upstream_is_too_large_within_bounded_memory(
    transport: AiohttpTransport,
) -> None:
    async with serving(bomb_handler) as front:
        raised, peak = await peak_memory_while(
            asyncio.gather(post(transport, front), return_exceptions=True)
        )
    assert isinstance(raised[0], TransportError) and raised[0].kind == "too_large"
    assert peak < 16 << 20, f"refusing a bomb peaked at {peak} bytes"


async def test_a_stale_kept_alive_connection_is_retried_on_a_new_one(
    transport: AiohttpTransport,
) -> None:
    async with serving(answering(), drop_reused=True) as front:
        for _ in range(3):
            assert (await post(transport, front)).body == PAYLOAD
    assert front.dropped == 2, "the second and third calls found their connection closed"
    assert front.connections == 3


@pytest.mark.parametrize(
    ("reused", "dropped"),
    [(True, 2), (False, 1)],
    ids=["kept-alive: one retry on a new connection", "new: no retry, one call per poll"],
)
async def test_a_connection_closed_unanswered_is_retried_once_only_if_it_was_reused(
    transport: AiohttpTransport, reused: bool, dropped: int
) -> None:
    async def only_first(request: Request) -> Answer | None:
        return Answer(200, [], PAYLOAD) if reused and front.answers == 0 else None

    async with serving(only_first) as front:
        if reused:
            assert (await post(transport, front)).body == PAYLOAD
        with pytest.raises(TransportError) as raised:
            await post(transport, front)
    assert raised.value.kind == "protocol"
    assert front.dropped == dropped


async def test_idle_connections_closed_by_the_server_between_calls(
    transport: AiohttpTransport,
) -> None:
    async with serving(answering(), idle_timeout=0.05) as front:
        assert (await post(transport, front)).body == PAYLOAD
        while front.idle_closes == 0:
            await asyncio.sleep(0.01)
        assert (await post(transport, front)).body == PAYLOAD
    assert front.connections == 2


async def test_a_trickle_slower_than_the_timeout_is_a_timeout(
    transport: AiohttpTransport,
) -> None:
    async with serving(answering(framing=Framing(piece=16, gap=0.2))) as front:
        with pytest.raises(TransportError) as raised:
            await post(transport, front, timeout=0.5)
    assert raised.value.kind == "timeout"


@pytest.fixture
async def trusting(trust_ca: Path) -> AsyncIterator[AiohttpTransport]:
    """A transport made once SSL_CERT_FILE names the test CA, as the worker's are."""
    made = AiohttpTransport()
    yield made
    await made.close()


@pytest.mark.parametrize("framing", [Framing(), Framing("chunked", encoding="gzip", piece=64)])
async def test_https_is_verified_against_the_bundle_ssl_cert_file_names(
    trusting: AiohttpTransport, tls: ssl.SSLContext, framing: Framing
) -> None:
    async with serving(answering(framing=framing), ssl_context=tls) as front:
        assert front.url.startswith("https://")
        assert (await post(trusting, front)).body == PAYLOAD


async def test_a_certificate_from_an_untrusted_ca_is_a_tls_fault(
    trusting: AiohttpTransport, untrusted_tls: ssl.SSLContext
) -> None:
    async with serving(answering(), ssl_context=untrusted_tls) as front:
        with pytest.raises(TransportError) as raised:
            await post(trusting, front)
    assert raised.value.kind == "tls"
    assert front.answers == 0


async def test_without_ssl_cert_file_the_test_ca_is_not_trusted(
    tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    transport = AiohttpTransport()
    try:
        async with serving(answering(), ssl_context=tls) as front:
            with pytest.raises(TransportError) as raised:
                await post(transport, front)
    finally:
        await transport.close()
    assert raised.value.kind == "tls"
