"""What every route works with, built once per app in its lifespan: one typed object
instead of loose attributes on Starlette's `app.state`."""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request

from relay.api.auth import Tenants
from relay.api.waiters import Waiters
from relay.metrics import Recorder
from relay.outbound import AddressGuard
from relay.settings import Settings
from relay.store import PollQueue, Registry
from relay.store.redis import Client


@dataclasses.dataclass(frozen=True)
class ApiContext:
    settings: Settings
    redis: Client
    tenants: Tenants  # the API keys, and which tenant a request's key names
    guard: AddressGuard  # webhook URLs checked at registration
    registry: Registry  # registrations, reads, deliveries, redeliver
    polls: PollQueue  # the upstream webhook's signal, the refused-key flag
    recorder: Recorder  # this process's metrics, flushed to Redis
    waiters: Waiters  # long-polls, woken by the finals channel
    openapi: dict[str, Any]  # /openapi.json, built once


def context(request: Request) -> ApiContext:
    """The app's context, as its lifespan set it."""
    found: ApiContext = request.app.state.relay
    return found
