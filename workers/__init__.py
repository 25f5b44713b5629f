"""The relay's worker process: polling the upstream and delivering webhooks, hosted by arq."""

from workers.worker import build_worker

__all__ = ["build_worker"]
