"""Held receivers: which of the caller's webhook receivers the circuit breaker holds."""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from relay.api.context import context
from relay.api.responses import JSONResponse
from relay.core.resource import Timestamp, rfc3339
from relay.store.breaker import held_receivers


class HeldReceiver(msgspec.Struct):
    origin: str  # scheme://host:port of the webhook URLs it serves
    held_since: Timestamp
    next_probe_at: Timestamp  # the earliest; one probe at a time
    failures: int  # failed attempts in a row


class HeldReceiverList(msgspec.Struct):
    receivers: list[HeldReceiver]


async def list_held_receivers(request: Request) -> Response:
    """Only receivers this tenant's own deliveries waited for: others' URLs stay unseen."""
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    now = time.time()
    held = await held_receivers(ctx.redis, tenant, now)
    return JSONResponse(
        {
            "receivers": [
                {
                    "origin": h.origin,
                    "held_since": rfc3339(h.held_since),
                    "next_probe_at": rfc3339(max(h.next_probe_at, now)),
                    "failures": h.failures,
                }
                for h in held
            ]
        }
    )
