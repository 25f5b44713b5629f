"""`GET /openapi.json`: a valid OpenAPI 3.1 description of exactly the routes the app serves,
and the real API (uvicorn on loopback) answers as it documents, whatever it is sent.

The property-based part is schemathesis 4: every operation is fuzzed with schema-valid
(positive) and schema-violating (negative) requests, each response must not be a 5xx and
must conform to the documented status codes, content types and body schemas. Schemathesis
sends with `requests` (blocking), so it runs in a thread while the session's event loop
serves the API.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openapi_spec_validator
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette

from relay.api.app import ENDPOINTS, create_app
from relay.settings import Settings
from support.payloads import finished, new_id
from support.servers import Receiver, ScriptedUpstream
from tests.conftest import Api

AUTH = {"Authorization": "Bearer key-alpha-0123456789"}
UPSTREAM_SECRET = {"x-webhook-secret": "upstream-hook-secret"}  # fast_env's
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25
WAIT_PATH = "/v1/tasks/{task_id}/wait"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


async def fetch_spec(api: Api) -> dict[str, Any]:
    response = await api.client.get("/openapi.json", headers={"authorization": ""})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    spec: dict[str, Any] = response.json()
    return spec


def served_operations(app: Starlette) -> set[tuple[str, str]]:
    """(path, method) for every route of the Starlette app; HEAD is implied by GET."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        methods = set(getattr(route, "methods", None) or ())
        assert methods, f"route {route!r} serves no method"
        if "GET" in methods:
            methods.discard("HEAD")
        found.update((route.path, m.lower()) for m in methods)  # type: ignore[attr-defined]
    return found


def described_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


# --- the description itself ------------------------------------------------------------


async def test_openapi_json_is_valid_openapi_3_1(api: Api) -> None:
    spec = await fetch_spec(api)
    assert spec["openapi"].startswith("3.1"), spec["openapi"]
    # Raises OpenAPIValidationError with the first problem found.
    openapi_spec_validator.validate(spec, cls=OpenAPIV31SpecValidator)
    errors = [str(e) for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []


async def test_every_route_is_described_and_every_described_path_is_routed(
    api: Api, settings: Settings
) -> None:
    spec = await fetch_spec(api)
    app = api.server.config.app  # the very app uvicorn serves
    assert isinstance(app, Starlette)
    served = served_operations(app)
    assert served == served_operations(create_app(settings))
    described = described_operations(spec)
    assert served - described == set(), "routes missing from /openapi.json"
    assert described - served == set(), "documented operations the app does not serve"
    table = {(e.path, e.method.lower()) for e in ENDPOINTS}
    assert table == served == described
    assert len(ENDPOINTS) == len(table), "an endpoint is listed twice"


async def test_every_operation_is_described_fully(api: Api) -> None:
    spec = await fetch_spec(api)
    operation_ids: list[str] = []
    no_key = {(e.path, e.method.lower()) for e in ENDPOINTS if not e.auth}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            assert operation["summary"], (method, path)
            assert operation["responses"], (method, path)
            for name in [p.strip("{}") for p in path.split("/") if p.startswith("{")]:
                params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
                assert any(p["name"] == name and p["required"] for p in params), (path, name)
            if (path, method) in no_key:
                assert operation.get("security") == [], f"{method} {path} needs no key"
            else:
                assert "security" not in operation, f"{method} {path} takes the global bearer"
                assert "401" in operation["responses"], (method, path)
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    assert spec["security"] == [{"bearer": []}]
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


# --- schemathesis against the real server ---------------------------------------------


def has_inputs(spec: dict[str, Any], path: str, method: str) -> bool:
    operation = spec["paths"][path][method.lower()]
    return bool(operation.get("parameters")) or "requestBody" in operation


def fuzz_operation(
    strategy: Any, base_url: str, headers: dict[str, str], statuses: set[int]
) -> None:
    """Up to MAX_EXAMPLES generated requests; raises the first failure found."""

    @seed(20261129)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case) -> None:
        response = case.call_and_validate(
            base_url=base_url, headers=headers, checks=CHECKS, timeout=10
        )
        statuses.add(response.status_code)

    run()


def fuzz(base_url: str, known: dict[str, str]) -> tuple[list[str], dict[str, set[int]]]:
    """Every operation, positive and negative; the failures found and the statuses seen.

    Operations on one task run twice: with generated ids (which no one registered) and
    with `known[label]`, a registered task's id, so that the handlers past the lookup run.
    """
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", timeout=10)
    spec: dict[str, Any] = httpx.get(base_url + "/openapi.json", timeout=10).json()
    failures: list[str] = []
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        headers = dict(AUTH)
        if operation.path == "/v1/upstream/webhook":
            headers.update(UPSTREAM_SECRET)  # else every call stops at the 401
        variants: list[tuple[str, dict[str, str] | None]] = [("", None)]
        if operation.label in known:
            variants.append((" known id", {"task_id": known[operation.label]}))
        for suffix, path_parameters in variants:
            for mode in GenerationMode:
                if mode is GenerationMode.NEGATIVE:
                    if not has_inputs(spec, operation.path, operation.method):
                        continue  # nothing to make invalid
                    if operation.path == WAIT_PATH and path_parameters is not None:
                        continue  # a mutated `timeout` may still read as seconds to wait
                query = None
                if operation.path == WAIT_PATH and mode is GenerationMode.POSITIVE:
                    # A long-poll must not hold the run: never wait. Generated ids are not
                    # registered, so negative cases answer at once; the client's timeout
                    # bounds anything else.
                    query = {"timeout": 0}
                strategy = operation.as_strategy(
                    generation_mode=mode, query=query, path_parameters=path_parameters
                )
                label = f"{operation.label}{suffix} [{mode.value}]"
                statuses = seen.setdefault(label, set())
                try:
                    fuzz_operation(strategy, base_url, headers, statuses)
                except BaseException as exc:  # FailureGroup is a BaseExceptionGroup
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    failures.append(f"{label}: {exc}")
    return failures, seen


async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(api: Api) -> None:
    spec = await fetch_spec(api)
    known: dict[str, str] = {}
    for path, item in spec["paths"].items():
        if "{task_id}" in path:
            for method in item:
                task_id = new_id()
                assert (await api.register(task_id, metadata={"m": method})).status_code == 201
                known[f"{method.upper()} {path}"] = task_id
    base_url = str(api.client.base_url).rstrip("/")
    failures, seen = await asyncio.to_thread(fuzz, base_url, known)
    assert not failures, "\n\n".join(failures)
    # The run did reach the handlers, not only the auth layer.
    assert all(statuses for statuses in seen.values()), seen
    assert {201, 422} <= seen["POST /v1/tasks [positive]"] | seen["POST /v1/tasks [negative]"]
    assert 202 in seen["POST /v1/upstream/webhook [positive]"]
    assert 200 in seen["GET /v1/tasks [positive]"]
    assert 200 in seen["GET /v1/tasks/{task_id} known id [positive]"]
    assert 200 in seen["GET /v1/tasks/{task_id}/wait known id [positive]"]
    assert 409 in seen["POST /v1/tasks/{task_id}/redeliver known id [positive]"]
    assert 204 in seen["DELETE /v1/tasks/{task_id} known id [positive]"]


def conformance_run(
    base_url: str, hook_url: str, task_id: str, idle_id: str, beta_id: str
) -> list[tuple[str, int, int]]:
    """Real requests with real ids against every operation, each validated by schemathesis."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", timeout=10)

    def call(
        path: str,
        method: str,
        expected: int,
        *,
        path_parameters: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[str, int, int]:
        operation = schema[path][method]
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["body"] = body
            kwargs["media_type"] = "application/json"
        case = operation.Case(path_parameters=path_parameters, query=query, **kwargs)
        response = case.call_and_validate(
            base_url=base_url,
            headers=AUTH if headers is None else headers,
            checks=CHECKS,
            timeout=10,
        )
        return (f"{method} {path}", expected, response.status_code)

    tid = {"task_id": task_id}
    return [
        call("/v1/tasks", "POST", 200, body={"task_id": task_id, "webhook_url": hook_url}),
        call("/v1/tasks", "POST", 409, body={"task_id": task_id, "events": []}),
        call("/v1/tasks", "POST", 422, body={"task_id": "nope"}),
        call("/v1/tasks", "POST", 401, body={"task_id": new_id()}, headers={"x": "y"}),
        call("/v1/tasks", "GET", 200, query={"limit": 1}),
        call("/v1/tasks", "GET", 200, query={"status": "succeeded"}),
        call("/v1/tasks", "GET", 400, query={"limit": 0}),
        call("/v1/tasks/{task_id}", "GET", 200, path_parameters=tid),
        call("/v1/tasks/{task_id}", "GET", 404, path_parameters={"task_id": beta_id}),
        call(WAIT_PATH, "GET", 200, path_parameters=tid, query={"timeout": 1}),
        call(WAIT_PATH, "GET", 200, path_parameters={"task_id": idle_id}, query={"timeout": 0}),
        call(WAIT_PATH, "GET", 400, path_parameters=tid, query={"timeout": 61}),
        call("/v1/tasks/{task_id}/deliveries", "GET", 200, path_parameters=tid),
        call("/v1/deliveries", "GET", 200, query={"status": "failed", "limit": 5}),
        call("/v1/deliveries", "GET", 400, query={"status": "delivered"}),
        call("/v1/tasks/{task_id}/redeliver", "POST", 409, path_parameters={"task_id": idle_id}),
        call("/v1/tasks/{task_id}/redeliver", "POST", 202, path_parameters=tid),
        call("/v1/deliveries/redeliver", "POST", 202),
        call(
            "/v1/upstream/webhook",
            "POST",
            202,
            body={"task_id": idle_id, "status": "processing", "percentage": "40"},
            headers=UPSTREAM_SECRET,
        ),
        call(
            "/v1/upstream/webhook",
            "POST",
            401,
            body={"task_id": idle_id, "status": "processing"},
            headers={"x-webhook-secret": "wrong"},
        ),
        call(
            "/v1/upstream/webhook",
            "POST",
            400,
            body={"task_id": idle_id, "status": 7},
            headers=UPSTREAM_SECRET,
        ),
        call("/healthz", "GET", 200, headers={}),
        call("/readyz", "GET", 200, headers={}),
        call("/metrics", "GET", 200, headers={}),
        call("/openapi.json", "GET", 200, headers={}),
        call("/v1/tasks/{task_id}", "DELETE", 204, path_parameters={"task_id": idle_id}),
        call("/v1/tasks/{task_id}", "DELETE", 404, path_parameters={"task_id": idle_id}),
    ]


@pytest.mark.usefixtures("worker")
async def test_real_answers_of_every_operation_conform_to_the_description(
    api: Api,
    upstream: ScriptedUpstream,
    receiver: Receiver,
) -> None:
    """Filled-in resources (results, attempts, failed deliveries), validated against the spec."""
    task_id, idle_id, beta_id = new_id(), new_id(), new_id()
    upstream.script(task_id, finished(task_id))
    upstream.script(idle_id, {"task_id": idle_id, "task_type": "imagine", "status": "processing"})
    upstream.script(beta_id, finished(beta_id))
    receiver.answers = [500] * 4  # the first delivery fails for good (1 + 3 retries)
    assert (await api.register(task_id, webhook_url=receiver.url + "/hook")).status_code == 201
    assert (await api.register(idle_id, events=[])).status_code == 201
    assert (await api.register(beta_id, key="key-beta-0123456789")).status_code == 201
    await api.wait_status(task_id, "succeeded")
    await api.wait_status(idle_id, "running")
    await receiver.wait_for(4)
    for _ in range(100):
        failed = (await api.client.get("/v1/deliveries")).json()["deliveries"]
        if failed:
            break
        await asyncio.sleep(0.05)
    assert failed and failed[0]["attempts"], failed

    base_url = str(api.client.base_url).rstrip("/")
    hook_url = receiver.url + "/hook"
    results = await asyncio.to_thread(
        conformance_run, base_url, hook_url, task_id, idle_id, beta_id
    )
    wrong = [r for r in results if r[1] != r[2]]
    assert wrong == [], wrong
    statuses = {(label, status) for label, status, _ in results}
    assert ("GET /v1/tasks/{task_id}/deliveries", 200) in statuses
