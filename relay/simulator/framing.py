"""How an answer goes on the wire: the ways servers behind CDNs and proxies frame a body.

Pure: `wire` turns an answer and a `Framing` into the exact writes to make, so
the same bytes can be checked in a table and sent by `relay.simulator.front`.
"""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from collections.abc import Sequence
from http import HTTPStatus
from typing import Final, Literal, get_args

import brotli

Transfer = Literal["length", "chunked", "eof"]
Encoding = Literal["identity", "gzip", "deflate", "br"]
TRANSFERS: Final[tuple[Transfer, ...]] = get_args(Transfer)
ENCODINGS: Final[tuple[Encoding, ...]] = get_args(Encoding)

# Set by a server behind the front to choose the framing of one answer; never forwarded.
FRAMING_HEADER: Final = "x-stand-in-framing"

# Hop-by-hop or framing headers: the front writes its own.
_OWN_HEADERS: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", FRAMING_HEADER}
)


@dataclasses.dataclass(frozen=True)
class Framing:
    """One answer's framing.

    `transfer`: a Content-Length, chunks, or a body that ends when the connection
    closes. The (encoded) body goes out in `piece`-byte writes when `piece` is set,
    else in `split` equal writes, `gap` seconds apart. `close` adds
    `Connection: close` and closes after the answer ("eof" always does).
    """

    transfer: Transfer = "length"
    encoding: Encoding = "identity"
    piece: int = 0
    split: int = 1
    gap: float = 0.0
    close: bool = False

    def __post_init__(self) -> None:
        if self.transfer not in TRANSFERS:
            raise ValueError(f"transfer: must be one of {', '.join(TRANSFERS)}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding: must be one of {', '.join(ENCODINGS)}")
        if self.piece < 0 or self.split < 1 or not 0 <= self.gap < 3600:
            raise ValueError("piece >= 0, split >= 1 and 0 <= gap < 3600")

    @property
    def closes(self) -> bool:
        return self.close or self.transfer == "eof"

    def text(self) -> str:
        """The framing as `FRAMING_HEADER` carries it: `key=value` pairs, defaults left out."""
        default = Framing()
        return ";".join(
            f"{f.name}={_word(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        )

    @classmethod
    def parse(cls, text: str) -> Framing:
        """The inverse of `text`; ValueError for anything else."""
        fields: dict[str, object] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for pair in filter(None, (p.strip() for p in text.split(";"))):
            name, _, value = pair.partition("=")
            kind = types.get(name)
            if kind is None:
                raise ValueError(f"{name}: unknown framing field")
            if kind == "int":
                fields[name] = int(value)
            elif kind == "float":
                fields[name] = float(value)
            elif kind == "bool":
                fields[name] = value == "1"
            else:
                fields[name] = value
        return cls(**fields)  # type: ignore[arg-type]


def _word(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def encode(body: bytes, encoding: Encoding) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body, mtime=0)
    if encoding == "deflate":
        return zlib.compress(body)  # RFC 9110's "deflate" is the zlib format
    if encoding == "br":
        return bytes(brotli.compress(body))
    return body


def pieces(data: bytes, framing: Framing) -> list[bytes]:
    """The body's writes, before any chunk framing: never an empty one."""
    if not data:
        return []
    size = framing.piece or -(-len(data) // framing.split)
    return [data[i : i + size] for i in range(0, len(data), size)]


def head(status: int, headers: Sequence[tuple[str, str]], framing: Framing, length: int) -> bytes:
    """The status line and headers: the server's own, then the framing's."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    # A body the server encoded itself keeps its Content-Encoding; one the front encodes gets ours.
    own = _OWN_HEADERS if framing.encoding == "identity" else _OWN_HEADERS | {"content-encoding"}
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in own]
    if framing.encoding != "identity":
        lines.append(f"Content-Encoding: {framing.encoding}")
    if framing.transfer == "length":
        lines.append(f"Content-Length: {length}")
    elif framing.transfer == "chunked":
        lines.append("Transfer-Encoding: chunked")
    if framing.closes:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def wire(
    status: int, headers: Sequence[tuple[str, str]], body: bytes, framing: Framing
) -> list[bytes]:
    """Every write of the answer in order; the server pauses `framing.gap` between them."""
    data = encode(body, framing.encoding)
    parts = pieces(data, framing)
    if framing.transfer == "chunked":
        parts = [b"%x\r\n%s\r\n" % (len(p), p) for p in parts] + [b"0\r\n\r\n"]
    return [head(status, headers, framing, len(data)), *parts]


# What a public API behind a CDN does, one framing per answer in turn.
PROXY_LIKE: Final[tuple[Framing, ...]] = (
    Framing("chunked", piece=64, gap=0.01),
    Framing("length", split=2, gap=0.05),
    Framing("chunked", encoding="gzip", piece=128, gap=0.005),
    Framing("length", encoding="br"),
    Framing("length", encoding="deflate", split=3, gap=0.02),
    Framing("eof", close=True),
    Framing("length", close=True),
    Framing("length", piece=32, gap=0.02),  # a slow trickle, well within any sane timeout
)
