"""Build the Starlette application from the settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import Route

from relay.api import routes
from relay.api.auth import Tenants
from relay.api.errors import EXCEPTION_HANDLERS
from relay.core.schedule import PollPolicy
from relay.outbound import AddressGuard
from relay.settings import Settings
from relay.store import PollQueue, Registry, connect


def create_app(settings: Settings, redis: Redis | None = None) -> Starlette:
    """The API app. With `redis` given, the caller owns that client."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = redis if redis is not None else connect(settings.redis_url)
        state = app.state
        state.settings = settings
        state.tenants = Tenants(settings.api_keys)
        state.guard = AddressGuard(settings.allow_private_webhooks)
        state.registry = Registry(
            client, task_deadline=settings.task_deadline, retention=settings.retention
        )
        state.polls = PollQueue(client, rate=settings.upstream_rate, retention=settings.retention)
        state.policy = PollPolicy(
            min_interval=settings.poll_min_interval,
            max_interval=settings.poll_max_interval,
            failed_grace=settings.failed_grace,
        )
        try:
            yield
        finally:
            if redis is None:
                await client.aclose()

    return Starlette(
        routes=[
            Route("/v1/tasks", routes.register_task, methods=["POST"]),
            Route("/v1/tasks/{task_id}", routes.get_task, methods=["GET"]),
            Route("/v1/tasks/{task_id}", routes.delete_task, methods=["DELETE"]),
            Route("/v1/tasks/{task_id}/deliveries", routes.list_deliveries, methods=["GET"]),
            Route("/v1/tasks/{task_id}/redeliver", routes.redeliver, methods=["POST"]),
            Route("/v1/upstream/webhook", routes.upstream_webhook, methods=["POST"]),
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/readyz", routes.readyz, methods=["GET"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
