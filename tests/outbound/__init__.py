"""Stand-in pieces the outbound tests share."""

from __future__ import annotations

import functools
import zlib

from relay.simulator.framing import Framing
from relay.simulator.front import Answer, Request

BOMB_BYTES = 200 << 20  # once decoded; about 200 KB on the wire


@functools.cache
def gzip_bomb() -> bytes:
    """`BOMB_BYTES` zero bytes gzip-compressed, made without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(BOMB_BYTES >> 20)]
    return b"".join([*parts, packer.flush()])


async def bomb_handler(request: Request) -> Answer:
    """A hostile server's answer: a gzip bomb it encoded itself, which the front passes on."""
    headers = [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")]
    return Answer(200, headers, gzip_bomb(), Framing("chunked", piece=16_384))
