"""Why a delivery was refused, with the HTTP status a receiver answers for it."""

from __future__ import annotations


class WebhookError(Exception):
    """A delivery the receiver must not act on."""

    status = 400


class MalformedWebhook(WebhookError):
    """400: headers missing or malformed, or a body that is not an event."""


class InvalidSignature(WebhookError):
    """401: no signature matches any of the receiver's secrets."""

    status = 401


class StaleTimestamp(InvalidSignature):
    """401: `webhook-timestamp` is outside the tolerance (a replay, or a skewed clock)."""
