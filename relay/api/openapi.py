"""The OpenAPI 3.1 description, built from the same endpoint table that builds the routes."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from relay import __version__
from relay.api import schemas

Handler = Callable[[Request], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" or "query"
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclasses.dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    responses: dict[int, tuple[type | None, str]]
    body: type | None = None
    params: tuple[Param, ...] = ()
    auth: bool = True
    content_type: str = "application/json"


TASK_ID = Param("task_id", "path", {"type": "string"}, "The upstream task's UUID", required=True)

_COMMON_ERRORS: dict[int, str] = {
    401: "Missing or unknown API key",
    503: "Redis is unreachable; retry shortly",
}


def build_spec(endpoints: list[Endpoint]) -> dict[str, Any]:
    types: set[type] = {schemas.Error}
    for endpoint in endpoints:
        if endpoint.body is not None:
            types.add(endpoint.body)
        types.update(t for t, _ in endpoint.responses.values() if t is not None)
    ordered = sorted(types, key=lambda t: t.__name__)
    refs, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}"
    )
    ref_of = dict(zip(ordered, refs, strict=True))

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": endpoint.handler.__name__,
            "responses": {},
        }
        if endpoint.params:
            operation["parameters"] = [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required or p.where == "path",
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in endpoint.params
            ]
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref_of[endpoint.body]}},
            }
        if not endpoint.auth:
            operation["security"] = []
        responses = dict(endpoint.responses)
        if endpoint.auth:
            responses.setdefault(401, (schemas.Error, _COMMON_ERRORS[401]))
            responses.setdefault(503, (schemas.Error, _COMMON_ERRORS[503]))
        for status, (body_type, description) in sorted(responses.items()):
            answer: dict[str, Any] = {"description": description}
            if body_type is not None:
                answer["content"] = {
                    endpoint.content_type if status < 300 else "application/json": {
                        "schema": ref_of[body_type]
                    }
                }
            elif status < 300 and endpoint.content_type != "application/json":
                answer["content"] = {endpoint.content_type: {"schema": {"type": "string"}}}
            operation["responses"][str(status)] = answer
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "journey-relay",
            "version": __version__,
            "description": (
                "Registers upstream generation tasks, polls them, and delivers signed "
                "webhooks (Standard Webhooks) when they progress or end."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
