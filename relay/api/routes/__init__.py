"""Route handlers: read the request, call the store, render the answer."""

from relay.api.routes.deliveries import (
    failed_deliveries,
    list_deliveries,
    redeliver,
    redeliver_delivery,
    redeliver_failed,
)
from relay.api.routes.ops import healthz, openapi, prometheus, readyz, status_page
from relay.api.routes.tasks import (
    delete_task,
    get_task,
    list_tasks,
    register_task,
    wait_task,
)
from relay.api.routes.upstream import upstream_webhook

__all__ = [
    "delete_task",
    "failed_deliveries",
    "get_task",
    "healthz",
    "list_deliveries",
    "list_tasks",
    "openapi",
    "prometheus",
    "readyz",
    "redeliver",
    "redeliver_delivery",
    "redeliver_failed",
    "register_task",
    "status_page",
    "upstream_webhook",
    "wait_task",
]
