"""journey-relay: polls a slow generation API for its tasks and delivers signed webhooks."""

__version__ = "0.1.0"
