"""The relay's worker process: polling the upstream and delivering webhooks, hosted by
workers.host (signals, startup and shutdown, periodic jobs)."""

from workers.worker import run

__all__ = ["run"]
