"""journey-relay's client: `RelayClient` and `AsyncRelayClient` for the HTTP API, and
`relay_client.receiver` to verify, read and deduplicate its webhooks."""

__version__ = "0.1.0"

from relay_client.aio import AsyncRelayClient
from relay_client.client import RelayClient
from relay_client.errors import (
    BadRequest,
    ClientError,
    Conflict,
    InvalidField,
    NoEvent,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RelayConnectionError,
    RelayError,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    UnsupportedMediaType,
)
from relay_client.models import (
    FINAL_STATUSES,
    Attempt,
    Delivery,
    Page,
    Registered,
    Task,
    TaskResult,
)
from relay_client.retry import NO_RETRY, RetryPolicy

__all__ = [
    "FINAL_STATUSES",
    "NO_RETRY",
    "AsyncRelayClient",
    "Attempt",
    "BadRequest",
    "ClientError",
    "Conflict",
    "Delivery",
    "InvalidField",
    "NoEvent",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "QuotaExceeded",
    "Registered",
    "RelayClient",
    "RelayConnectionError",
    "RelayError",
    "RetryPolicy",
    "ServerError",
    "Task",
    "TaskResult",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "UnsupportedMediaType",
    "__version__",
]
