"""Fetch one task's status from the upstream and classify the answer.

Every answer, however broken, becomes a `FetchResult`; nothing here raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import msgspec

from relay.core.model import Observation
from relay.core.normalize import Malformed, normalize
from relay.outbound import Transport, TransportError

Kind = Literal["ok", "unauthorized", "not_found", "rate_limited", "error"]
_decode = msgspec.json.Decoder().decode


class FetchResult(msgspec.Struct, frozen=True):
    """A fetch's answer, classified. A Struct: one is built per poll."""

    kind: Kind
    observation: Observation | None = None
    raw: Any = None  # the decoded body, for the upstream webhook path and logs
    retry_after: float | None = None
    detail: str = ""  # for logs and metrics: which fault it was


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), bounded."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), 3600.0)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by its lower-case name, from case-insensitive headers or a plain dict."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def classify(
    status: int, headers: Mapping[str, str], body: bytes, task_id: str, now: float
) -> FetchResult:
    """What one HTTP answer of the fetch call means. Pure."""
    if status == 401 or status == 403:
        return FetchResult("unauthorized", detail=f"http_{status}")
    if status == 404:
        return FetchResult("not_found", detail="http_404")
    if status == 429:
        return FetchResult(
            "rate_limited",
            retry_after=parse_retry_after(header(headers, "retry-after"), now),
            detail="http_429",
        )
    if status != 200:
        retry_after = (
            parse_retry_after(header(headers, "retry-after"), now) if status == 503 else None
        )
        return FetchResult("error", retry_after=retry_after, detail=f"http_{status}")
    try:
        payload = _decode(body)
    except (msgspec.DecodeError, ValueError, UnicodeDecodeError):
        return FetchResult("error", detail="non_json" if body.strip() else "empty_body")
    except RecursionError:
        return FetchResult("error", detail="wrong_shape")
    try:
        observation = normalize(payload, task_id)
    except Malformed:
        return FetchResult("error", raw=payload, detail="wrong_shape")
    return FetchResult("ok", observation=observation, raw=payload)


class UpstreamClient:
    def __init__(
        self, transport: Transport, *, base_url: str, api_key: str, timeout: float
    ) -> None:
        self.transport = transport
        self.url = base_url.rstrip("/") + "/api/v1/fetch"
        # The upstream takes the key as it is, no "Bearer" prefix.
        self.headers = {"authorization": api_key, "content-type": "application/json"}
        self.timeout = timeout

    async def fetch(self, task_id: str, now: float) -> FetchResult:
        body = b'{"task_id":"%s"}' % task_id.encode()
        try:
            reply = await self.transport.post(self.url, body, self.headers, self.timeout)
        except TransportError as exc:
            return FetchResult("error", detail=exc.kind)
        return classify(reply.status, reply.headers, reply.body, task_id, now)
