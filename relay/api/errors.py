"""The API's one error shape: {"error": {"code", "message", "field"?}}."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from redis.exceptions import ClusterError, ReadOnlyError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from relay.api.responses import JSONResponse

logger = logging.getLogger("relay.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.field)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def on_redis_down(request: Request, exc: Exception) -> Response:
    logger.warning("redis unavailable: %s", exc)
    return error_response(
        503,
        "unavailable",
        "Storage is unavailable; try again shortly",
        headers={"retry-after": "1"},
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "Internal error")


EXCEPTION_HANDLERS = {
    ApiError: on_api_error,
    HTTPException: on_http_exception,
    RedisConnectionError: on_redis_down,
    RedisTimeoutError: on_redis_down,
    # A Redis Cluster in a failover longer than the client rides out: the cluster
    # down, a slot not served yet, a write reaching a node just made a replica.
    ClusterError: on_redis_down,
    RedisClusterException: on_redis_down,
    TryAgainError: on_redis_down,
    ReadOnlyError: on_redis_down,
    Exception: on_unexpected,
}
