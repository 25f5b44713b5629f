"""Webhook delivery: build, sign and POST one attempt; report what happened."""

from relay.delivery.sender import Attempt, WebhookSender

__all__ = ["Attempt", "WebhookSender"]
