"""What the API answers when Redis fails mid-request: every outage or failover state is a
503 with a Retry-After (the client tries again), never a 500.

The errors are raised by a route of a small Starlette app that uses the API's own
exception handlers: a real cluster failover gives them only by chance (one did, under
load, as a 500 before the cluster's errors were mapped)."""

from __future__ import annotations

import httpx
import pytest
from redis import exceptions
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relay.api.errors import EXCEPTION_HANDLERS

STORAGE_ERRORS = [
    exceptions.ConnectionError("Connection refused"),
    exceptions.TimeoutError("Timeout reading from socket"),
    exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    exceptions.ClusterDownError("The cluster is down"),
    exceptions.MasterDownError("Link with MASTER is down"),
    exceptions.ClusterError("TTL exhausted."),
    exceptions.TryAgainError("Multiple keys request during rehashing of slot"),
    exceptions.ReadOnlyError("You can't write against a read only replica."),
    exceptions.SlotNotCoveredError("Slot 866 is not covered by the cluster."),
    exceptions.RedisClusterException("Redis Cluster cannot be connected."),
]


def app_raising(error: Exception) -> Starlette:
    async def route(request: Request) -> Response:
        raise error

    return Starlette(
        routes=[Route("/v1/tasks", route, methods=["POST"])],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )


async def post(app: Starlette) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
        return await client.post("/v1/tasks", json={})


@pytest.mark.parametrize("error", STORAGE_ERRORS, ids=lambda e: type(e).__name__)
async def test_a_storage_outage_or_failover_is_a_503_to_retry(error: Exception) -> None:
    response = await post(app_raising(error))
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "unavailable"


async def test_a_script_error_is_still_a_500() -> None:
    # A bug (a script that fails), not an outage: retrying would not mend it.
    response = await post(app_raising(exceptions.ResponseError("ERR user_script:1: oops")))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal"
