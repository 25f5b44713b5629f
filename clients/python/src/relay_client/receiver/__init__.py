"""Receiving the relay's webhooks: verify (`Verifier`), read (`Event` and its kinds),
deduplicate (`MemoryDeduplicator`; `relay_client.receiver.redis_store.RedisDeduplicator`),
and a ready endpoint (`relay_client.receiver.endpoint`, with the `starlette` extra).

This module imports neither Starlette nor Redis: a framework of your own needs only
`Verifier.receive(body, headers)` and a deduplicator.
"""

from relay_client.receiver.dedup import DEFAULT_TTL, Deduplicator, MemoryDeduplicator
from relay_client.receiver.errors import (
    InvalidSignature,
    MalformedWebhook,
    StaleTimestamp,
    WebhookError,
)
from relay_client.receiver.events import (
    EVENT_CLASSES,
    Event,
    TaskFailed,
    TaskProgress,
    TaskSucceeded,
    TaskTimedOut,
    parse_event,
)
from relay_client.receiver.verify import DEFAULT_TOLERANCE, Verified, Verifier, parse_secrets, sign

__all__ = [
    "DEFAULT_TOLERANCE",
    "DEFAULT_TTL",
    "EVENT_CLASSES",
    "Deduplicator",
    "Event",
    "InvalidSignature",
    "MalformedWebhook",
    "MemoryDeduplicator",
    "StaleTimestamp",
    "TaskFailed",
    "TaskProgress",
    "TaskSucceeded",
    "TaskTimedOut",
    "Verified",
    "Verifier",
    "WebhookError",
    "parse_event",
    "parse_secrets",
    "sign",
]
