"""A local stand-in for the upstream's `POST /api/v1/fetch`, with tasks that progress over time."""

from __future__ import annotations

from relay.simulator.app import create_app
from relay.simulator.plans import Plan, answer, plan_for

__all__ = ["Plan", "answer", "create_app", "plan_for", "run"]


def run(host: str, port: int, *, api_key: str | None, speed: float, strict: bool) -> None:
    """Serve the simulator until interrupted."""
    import uvicorn

    app = create_app(api_key=api_key, speed=speed, strict=strict)
    uvicorn.run(app, host=host, port=port, log_level="warning")
