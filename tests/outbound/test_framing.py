"""The framing machinery's pure parts, table-wise: what goes on the wire for each framing."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import brotli
import pytest

from relay.simulator.framing import (
    FRAMING_HEADER,
    PROXY_LIKE,
    Encoding,
    Framing,
    encode,
    pieces,
    wire,
)
from relay.simulator.front import parse_head

BODY = b'{"status":"finished","image_url":"https://images.example/a.png"}' * 5  # 320 bytes


def _same(data: bytes) -> bytes:
    return data


DECODE: dict[str, Callable[[bytes], bytes]] = {
    "identity": _same,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "br": brotli.decompress,
}


def split_answer(writes: list[bytes]) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers and raw body of the answer the writes make, as a client sees it."""
    raw = b"".join(writes)
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
    return status, headers, body


def unchunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert data == b"\r\n", "the last chunk ends the body"
            return out
        out, data = out + data[:size], data[size:]
        assert data.startswith(b"\r\n")
        data = data[2:]


@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate", "br"])
def test_encode_round_trips(encoding: Encoding) -> None:
    encoded = encode(BODY, encoding)
    assert DECODE[encoding](encoded) == BODY
    assert (encoded == BODY) == (encoding == "identity")


@pytest.mark.parametrize(
    ("framing", "sizes"),
    [
        (Framing(), [320]),
        (Framing(split=2), [160, 160]),
        (Framing(split=3), [107, 107, 106]),
        (Framing(piece=64), [64] * 5),
        (Framing(piece=100), [100, 100, 100, 20]),
        (Framing(piece=1000), [320]),
        (Framing(piece=64, split=2), [64] * 5),  # a piece size wins over a split
    ],
)
def test_pieces(framing: Framing, sizes: list[int]) -> None:
    parts = pieces(BODY, framing)
    assert [len(p) for p in parts] == sizes
    assert b"".join(parts) == BODY


def test_an_empty_body_makes_no_write() -> None:
    assert pieces(b"", Framing(piece=10)) == []
    assert wire(204, [], b"", Framing("chunked"))[1:] == [b"0\r\n\r\n"]


FRAMINGS = [
    Framing(),
    Framing("chunked", piece=64, gap=0.01),
    Framing("length", split=2, gap=0.05),
    Framing("chunked", encoding="gzip", piece=50),
    Framing("length", encoding="deflate"),
    Framing("length", encoding="br", split=2),
    Framing("eof"),
    Framing(close=True),
    *PROXY_LIKE,
]


@pytest.mark.parametrize("framing", FRAMINGS, ids=lambda f: f.text() or "plain")
def test_the_wire_carries_the_whole_body_as_framed(framing: Framing) -> None:
    writes = wire(200, [("Content-Type", "application/json")], BODY, framing)
    status, headers, raw = split_answer(writes)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == "application/json"
    if framing.transfer == "chunked":
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
        raw = unchunk(raw)
    elif framing.transfer == "length":
        assert int(headers["content-length"]) == len(raw)
    else:
        assert "content-length" not in headers and "transfer-encoding" not in headers
    assert ("connection" in headers) == framing.closes
    assert headers.get("content-encoding", "identity") == framing.encoding
    assert DECODE[framing.encoding](raw) == BODY
    body_writes = len(writes) - 1 - (framing.transfer == "chunked")
    assert body_writes == len(pieces(encode(BODY, framing.encoding), framing))


def test_the_front_drops_the_servers_framing_headers_and_keeps_its_encoding() -> None:
    server = [
        ("Content-Length", "999"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "keep-alive"),
        (FRAMING_HEADER, "transfer=eof"),
        ("Content-Encoding", "gzip"),
        ("X-Request-Id", "abc"),
    ]
    _, headers, _ = split_answer(wire(200, server, b"12345", Framing()))
    assert headers == {"x-request-id": "abc", "content-encoding": "gzip", "content-length": "5"}
    _, headers, _ = split_answer(wire(200, server, b"12345", Framing(encoding="br")))
    assert headers["content-encoding"] == "br"


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, "HTTP/1.1 200 OK"),
        (429, "HTTP/1.1 429 Too Many Requests"),
        (599, "HTTP/1.1 599 Unknown"),
    ],
)
def test_the_status_line(status: int, line: str) -> None:
    assert split_answer(wire(status, [], b"", Framing()))[0] == line


@pytest.mark.parametrize("framing", FRAMINGS, ids=lambda f: f.text() or "plain")
def test_framing_text_round_trips(framing: Framing) -> None:
    assert Framing.parse(framing.text()) == framing


@pytest.mark.parametrize(
    ("text", "framing"),
    [
        ("", Framing()),
        ("transfer=chunked;piece=64;gap=0.01", Framing("chunked", piece=64, gap=0.01)),
        (" encoding=br ; close=1 ", Framing(encoding="br", close=True)),
        ("split=2;close=0", Framing(split=2)),
    ],
)
def test_framing_parse(text: str, framing: Framing) -> None:
    assert Framing.parse(text) == framing


@pytest.mark.parametrize(
    "text",
    ["transfer=smoke", "encoding=zstd", "piece=-1", "split=0", "gap=-1", "pieces=3", "piece=x"],
)
def test_framing_parse_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        Framing.parse(text)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (
            b"POST /api/v1/fetch HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n",
            ("POST", "/api/v1/fetch", {"host": "x", "content-length": "3"}),
        ),
        (b"GET /a?b=c HTTP/1.0\r\nX-A:  spaced \r\n\r\n", ("GET", "/a?b=c", {"x-a": "spaced"})),
    ],
)
def test_parse_head(raw: bytes, parsed: tuple[str, str, dict[str, str]]) -> None:
    assert parse_head(raw) == parsed


@pytest.mark.parametrize(
    "raw",
    [b"POST /\r\n\r\n", b"POST / HTTP/2\r\n\r\n", b"POST / HTTP/1.1\r\nno colon\r\n\r\n"],
)
def test_parse_head_refuses_malformed_heads(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_head(raw)
