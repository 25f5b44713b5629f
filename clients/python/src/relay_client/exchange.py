"""What the sync and the async client share around one HTTP exchange: the request's
arguments, whether to try again, and reading the answer into a result or an exception."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import httpx

from relay_client import __version__
from relay_client.calls import Call
from relay_client.errors import RelayConnectionError, UnexpectedResponse, error_for
from relay_client.models import MalformedResource
from relay_client.retry import RetryPolicy, retry_after_seconds

T = TypeVar("T")

# The longest the relay holds one long-poll (its `timeout` parameter's maximum).
WAIT_STEP = 60


def client_options(base_url: str, api_key: str, options: dict[str, Any]) -> dict[str, Any]:
    """Arguments for httpx.Client / httpx.AsyncClient; `options` (verify, proxy, transport,
    limits...) pass through, and the key travels only in the Authorization header."""
    headers = {
        "authorization": f"Bearer {api_key}",
        "user-agent": f"journey-relay-client/{__version__}",
        **dict(options.pop("headers", None) or {}),
    }
    return {"base_url": base_url.rstrip("/"), "headers": headers, **options}


def request_args(call: Call[Any], timeout: float) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.params, "timeout": timeout + call.held}
    if call.body is not None:
        args["json"] = call.body
    return args


def next_delay(
    call: Call[Any], policy: RetryPolicy, attempt: int, response: httpx.Response | None
) -> float | None:
    """Seconds to wait before sending `call` again, or None to settle on this outcome
    (`response` None: the connection failed)."""
    if not call.idempotent or not policy.allows(attempt):
        return None
    if response is None:
        return policy.delay(attempt)
    if response.status_code == 503:
        return policy.delay(attempt, retry_after_seconds(response.headers.get("retry-after")))
    return None


def settle(call: Call[T], response: httpx.Response, retried: bool) -> T:
    """The call's result, or the exception its answer stands for."""
    status = response.status_code
    if retried and status == 404 and call.missing_after_retry_is_done:
        return call.read(204, None)
    if not 200 <= status < 300:
        raise error_for(status, response.content)
    try:
        return call.read(status, response.json() if response.content else None)
    except (ValueError, MalformedResource) as exc:
        raise UnexpectedResponse(f"{call.method} {call.path}: {exc}", status=status) from None


def unreachable(call: Call[Any], exc: httpx.TransportError) -> RelayConnectionError:
    return RelayConnectionError(
        f"{call.method} {call.path}: {type(exc).__name__}: {exc}", code="connection"
    )


def wait_slice(remaining: float | None) -> int:
    """Seconds to ask one long-poll for, given what is left of the caller's own timeout."""
    if remaining is None:
        return WAIT_STEP
    return max(0, min(WAIT_STEP, math.ceil(remaining)))
