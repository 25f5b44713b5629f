"""Build the Starlette application from the settings and the endpoint table."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from relay.api import routes, schemas
from relay.api.auth import Tenants
from relay.api.context import ApiContext
from relay.api.errors import EXCEPTION_HANDLERS
from relay.api.openapi import TASK_ID, Endpoint, Param, build_spec
from relay.api.routes.receivers import HeldReceiverList, list_held_receivers
from relay.api.waiters import MAX_WAITS, Waiters
from relay.core.model import STATUSES
from relay.metrics import Recorder
from relay.outbound import AddressGuard
from relay.settings import Settings
from relay.store import PollQueue, Registry, connect
from relay.store.redis import Client

E = schemas.Error
LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200}, "Page size")
CURSOR = Param("cursor", "query", {"type": "string"}, "next_cursor of the previous page")

ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "POST", "/v1/tasks", routes.register_task, "Register a task to track",
        body=schemas.RegistrationBody,
        responses={
            201: (schemas.TaskResource, "Registered"),
            200: (schemas.TaskResource, "The identical registration already exists"),
            400: (E, "The body is not JSON"),
            409: (E, "Registered already with other values; `field` names the first"),
            413: (E, "The body is over 64 KiB"),
            415: (E, "The body is not application/json"),
            422: (E, "A field is wrong; `field` names it"),
            429: (E, "quota_exceeded: the tenant tracks RELAY_TENANT_MAX_TASKS tasks already"),
        },
    ),
    Endpoint(
        "GET", "/v1/tasks", routes.list_tasks, "The tenant's tasks, newest first",
        params=(
            Param("status", "query", {"enum": list(STATUSES)}, "Only tasks in this status"),
            LIMIT,
            CURSOR,
        ),
        responses={200: (schemas.TaskList, "A page of tasks"), 400: (E, "A bad query")},
    ),
    Endpoint(
        "GET", "/v1/tasks/{task_id}", routes.get_task, "The task as the relay knows it",
        params=(TASK_ID,),
        responses={200: (schemas.TaskResource, "The task"), 404: (E, "No such task")},
    ),
    Endpoint(
        "DELETE", "/v1/tasks/{task_id}", routes.delete_task, "Stop tracking; no webhook follows",
        params=(TASK_ID,),
        responses={204: (None, "Deleted"), 404: (E, "No such task")},
    ),
    Endpoint(
        "GET", "/v1/tasks/{task_id}/wait", routes.wait_task,
        "Long-poll: answers once the task is final, or after `timeout` seconds",
        params=(
            TASK_ID,
            Param("timeout", "query", {"type": "integer", "minimum": 0, "maximum": 60},
                  "Seconds to wait at most (default 30)"),
        ),
        responses={
            200: (schemas.TaskResource, "The task, final or as it is at the timeout"),
            204: (None, "The client went away"),
            400: (E, "A bad query"),
            404: (E, "No such task"),
            429: (E, f"too_many_waits: this API process holds its most open waits ({MAX_WAITS:,})"),
        },
    ),
    Endpoint(
        "GET", "/v1/tasks/{task_id}/deliveries", routes.list_deliveries,
        "Every delivery of the task, with each attempt",
        params=(TASK_ID,),
        responses={200: (schemas.DeliveryList, "The deliveries"), 404: (E, "No such task")},
    ),
    Endpoint(
        "POST", "/v1/tasks/{task_id}/redeliver", routes.redeliver,
        "Send the latest event again: same webhook-id, a new attempt series",
        params=(TASK_ID,),
        responses={
            202: (schemas.Redelivered, "A new attempt series started"),
            404: (E, "No such task"),
            409: (E, "The task has no event yet"),
        },
    ),
    Endpoint(
        "GET", "/v1/deliveries", routes.failed_deliveries,
        "The tenant's failed deliveries across its tasks, most recent first",
        params=(
            Param("status", "query", {"enum": ["failed"]}, "Only `failed` is listed"),
            LIMIT,
            CURSOR,
        ),
        responses={200: (schemas.FailedDeliveryList, "A page"), 400: (E, "A bad query")},
    ),
    Endpoint(
        "POST", "/v1/deliveries/{delivery_id}/redeliver", routes.redeliver_delivery,
        "Send one delivery's event again: same webhook-id, a new attempt series",
        params=(Param("delivery_id", "path", {"type": "string"}, "A delivery's id", True),),
        responses={
            202: (schemas.Redelivered, "A new attempt series started"),
            404: (E, "No such delivery"),
        },
    ),
    Endpoint(
        "POST", "/v1/deliveries/redeliver", routes.redeliver_failed,
        "A new attempt series for every failed delivery of the tenant",
        responses={202: (schemas.BulkRedelivered, "The deliveries started again")},
    ),
    Endpoint(
        "GET", "/v1/receivers", list_held_receivers,
        "The caller's webhook receivers that the circuit breaker holds (only probes reach them)",
        responses={200: (HeldReceiverList, "Held receivers, longest held first")},
    ),
    Endpoint(
        "POST", "/v1/upstream/webhook", routes.upstream_webhook,
        "The upstream's own callback (x-webhook-secret), handled like a poll's answer",
        body=schemas.UpstreamAnswer, auth=False,
        responses={
            202: (schemas.Accepted, "Signalled: the task is fetched now; or ignored"),
            400: (E, "A malformed body"),
            401: (E, "Missing or wrong x-webhook-secret"),
            413: (E, "The body is over 64 KiB"),
            415: (E, "The body is not application/json"),
            503: (E, "Redis is unreachable, or the task kept changing; the upstream retries"),
        },
    ),
    Endpoint("GET", "/healthz", routes.healthz, "Liveness", auth=False,
             responses={200: (schemas.Health, "The process serves")}),
    Endpoint("GET", "/readyz", routes.readyz, "Readiness: Redis answers", auth=False,
             responses={200: (schemas.Readiness, "Ready"), 503: (E, "Redis does not answer")}),
    Endpoint("GET", "/metrics", routes.prometheus, "Prometheus metrics", auth=False,
             content_type="text/plain",
             responses={200: (None, "Prometheus text format"), 503: (E, "Redis does not answer")}),
    Endpoint("GET", "/openapi.json", routes.openapi, "This description", auth=False,
             responses={200: (None, "OpenAPI 3.1")}),
    Endpoint("GET", "/status", routes.status_page,
             "The operator's status page (it asks for a tenant key in the browser)",
             auth=False, content_type="text/html", responses={200: (None, "An HTML page")}),
]  # fmt: skip


def create_app(settings: Settings, redis: Client | None = None) -> Starlette:
    """The API app. With `redis` given, the caller owns that client."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = redis if redis is not None else connect(settings.redis_url)
        state = ApiContext(
            settings=settings,
            redis=client,
            tenants=Tenants(settings.api_keys),
            guard=AddressGuard(settings.allow_private_webhooks),
            registry=Registry(
                client,
                task_deadline=settings.task_deadline,
                retention=settings.retention,
                max_tasks=settings.tenant_max_tasks,
            ),
            polls=PollQueue(client, rate=settings.upstream_rate, retention=settings.retention),
            recorder=Recorder(),
            waiters=Waiters(client),
            openapi=build_spec(ENDPOINTS),
        )
        app.state.relay = state
        stopping = asyncio.Event()
        flusher = asyncio.create_task(state.recorder.run(client, stopping))
        subscription = asyncio.create_task(state.waiters.run(), name="waiters")
        try:
            yield
        finally:
            subscription.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await subscription
            stopping.set()
            await flusher
            if redis is None:
                await client.aclose()

    app = Starlette(
        routes=[Route(e.path, e.handler, methods=[e.method]) for e in ENDPOINTS],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    # A path that is not a route is a 404 in the API's error shape, not a redirect.
    app.router.redirect_slashes = False
    return app
