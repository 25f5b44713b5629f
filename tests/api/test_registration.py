"""Registration and the API's edges, through the real app served by uvicorn on loopback.

Every client mistake must be a 4xx in the contract's error shape,
`{"error": {"code", "message", "field"?}}`, naming the field at fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.devtools.redis_server import free_port
from relay.settings import load_settings
from support.payloads import new_id
from tests.conftest import Api, fast_env
from tests.contract import RESOURCE_KEYS, RESULT_KEYS, RFC3339_Z

MAX_BODY = 64 * 1024
MAX_METADATA = 16 * 1024
FINAL_EVENTS = {"task.succeeded", "task.failed", "task.timed_out"}
HOOK = "https://hooks.example.com/relay"


def assert_error(
    response: httpx.Response, status: int, field: str | None = None, *, no_field: bool = False
) -> dict[str, Any]:
    """The response is `status` with the contract's error shape (and names `field`)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert {"code", "message"} <= set(error) <= {"code", "message", "field"}, body
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    if field is not None:
        assert error.get("field") == field, body
    if no_field:
        assert "field" not in error, body
    return error


def is_error_shape(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return False
    error = body["error"]
    return (
        {"code", "message"} <= set(error) <= {"code", "message", "field"}
        and isinstance(error["code"], str)
        and isinstance(error["message"], str)
        and isinstance(error.get("field", ""), str)
    )


async def post_raw(
    api: Api, content: Any, content_type: str | None = "application/json", **headers: str
) -> httpx.Response:
    sent = dict(headers)
    if content_type is not None:
        sent["content-type"] = content_type
    return await api.client.post("/v1/tasks", content=content, headers=sent)


# --- field mistakes -----------------------------------------------------------------------

UUID = "550e8400-e29b-41d4-a716-446655440000"

FIELD_MISTAKES: list[tuple[str, dict[str, Any], str]] = [
    # task_id
    ("task_id missing", {"webhook_url": HOOK}, "task_id"),
    ("task_id null", {"task_id": None}, "task_id"),
    ("task_id a number", {"task_id": 12345}, "task_id"),
    ("task_id a list", {"task_id": [UUID]}, "task_id"),
    ("task_id an object", {"task_id": {"id": UUID}}, "task_id"),
    ("task_id a boolean", {"task_id": True}, "task_id"),
    ("task_id empty", {"task_id": ""}, "task_id"),
    ("task_id not a UUID", {"task_id": "not-a-uuid"}, "task_id"),
    ("task_id too short", {"task_id": "550e8400-e29b-41d4-a716-44665544000"}, "task_id"),
    ("task_id not hex", {"task_id": "550e8400-e29b-41d4-a716-44665544000g"}, "task_id"),
    ("task_id in braces", {"task_id": "{" + UUID + "}"}, "task_id"),
    ("task_id as URN", {"task_id": "urn:uuid:" + UUID}, "task_id"),
    ("task_id without hyphens", {"task_id": UUID.replace("-", "")}, "task_id"),
    ("task_id with spaces", {"task_id": f" {UUID} "}, "task_id"),
    # webhook_url
    ("webhook_url a number", {"webhook_url": 42}, "webhook_url"),
    ("webhook_url a list", {"webhook_url": [HOOK]}, "webhook_url"),
    ("webhook_url an object", {"webhook_url": {"url": HOOK}}, "webhook_url"),
    ("webhook_url empty", {"webhook_url": ""}, "webhook_url"),
    ("webhook_url relative", {"webhook_url": "/hooks/relay"}, "webhook_url"),
    ("webhook_url no scheme", {"webhook_url": "hooks.example.com/relay"}, "webhook_url"),
    ("webhook_url ftp", {"webhook_url": "ftp://hooks.example.com/relay"}, "webhook_url"),
    ("webhook_url javascript", {"webhook_url": "javascript:alert(1)"}, "webhook_url"),
    ("webhook_url no host", {"webhook_url": "https:///relay"}, "webhook_url"),
    ("webhook_url only scheme", {"webhook_url": "https://"}, "webhook_url"),
    ("webhook_url space in host", {"webhook_url": "https://hooks.exa mple.com/"}, "webhook_url"),
    ("webhook_url space in path", {"webhook_url": "https://hooks.example.com/a b"}, "webhook_url"),
    ("webhook_url newline", {"webhook_url": "https://hooks.example.com/a\nb"}, "webhook_url"),
    ("webhook_url bad port", {"webhook_url": "https://hooks.example.com:99999/"}, "webhook_url"),
    (
        "webhook_url too long",
        {"webhook_url": "https://hooks.example.com/" + "a" * 2048},
        "webhook_url",
    ),
    # events
    ("events a string", {"events": "task.succeeded"}, "events"),
    ("events an object", {"events": {"task.succeeded": True}}, "events"),
    ("events a number", {"events": 1}, "events"),
    ("events unknown type", {"events": ["task.succeeded", "task.exploded"]}, "events"),
    ("events wrong case", {"events": ["TASK.SUCCEEDED"]}, "events"),
    ("events a number item", {"events": [1]}, "events"),
    ("events a null item", {"events": ["task.failed", None]}, "events"),
    ("events a list item", {"events": [["task.succeeded"]]}, "events"),
    ("events an object item", {"events": [{"type": "task.succeeded"}]}, "events"),
    # metadata
    ("metadata a list", {"metadata": [1, 2]}, "metadata"),
    ("metadata a string", {"metadata": "user=7"}, "metadata"),
    ("metadata a number", {"metadata": 7}, "metadata"),
    ("metadata a boolean", {"metadata": False}, "metadata"),
    ("metadata over 16 KiB", {"metadata": {"k": "x" * (MAX_METADATA - 8 + 1)}}, "metadata"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in FIELD_MISTAKES], ids=[n for n, _, _ in FIELD_MISTAKES]
)
async def test_a_field_mistake_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    payload = {"task_id": new_id(), **body} if field != "task_id" else body
    response = await api.client.post("/v1/tasks", json=payload)
    assert_error(response, 422, field)
    if "task_id" in payload and isinstance(payload["task_id"], str):
        with_id = payload["task_id"]
        if re.fullmatch(r"[0-9a-f-]{36}", with_id):
            assert (await api.task(with_id)).status_code == 404, "nothing was registered"


async def test_metadata_exactly_at_the_limit_is_accepted(api: Api) -> None:
    metadata = {"k": "x" * (MAX_METADATA - 8)}
    assert len(msgspec.json.encode(metadata)) == MAX_METADATA
    response = await api.register(new_id(), metadata=metadata)
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == metadata

    over = {"k": "x" * (MAX_METADATA - 8 + 1)}
    assert_error(await api.register(new_id(), metadata=over), 422, "metadata")


async def test_metadata_limit_counts_serialized_bytes_not_characters(api: Api) -> None:
    # 6000 three-byte characters: 6000 characters but 18000 bytes of JSON.
    response = await api.register(new_id(), metadata={"k": "€" * 6000})
    assert_error(response, 422, "metadata")


# --- body mistakes ------------------------------------------------------------------------

BODY_MISTAKES: list[tuple[str, bytes, int]] = [
    ("not JSON", b"task_id=550e8400", 400),
    ("truncated JSON", b'{"task_id": "550e8400-e29b-41d4-a716-446655440000"', 400),
    ("trailing garbage", b'{"task_id": "550e8400-e29b-41d4-a716-446655440000"} x', 400),
    ("invalid UTF-8", b'{"task_id": "\xff\xfe"}', 400),
    ("lone surrogate escape", b'{"task_id": "\\ud800"}', 400),
    ("NaN literal", b'{"task_id": NaN}', 400),
    ("empty", b"", 400),
    ("JSON array", b'["550e8400-e29b-41d4-a716-446655440000"]', 422),
    ("JSON string", b'"550e8400-e29b-41d4-a716-446655440000"', 422),
    ("JSON number", b"42", 422),
    ("JSON null", b"null", 422),
    ("JSON true", b"true", 422),
]


@pytest.mark.parametrize(
    ("content", "status"),
    [(c, s) for _, c, s in BODY_MISTAKES],
    ids=[n for n, _, _ in BODY_MISTAKES],
)
async def test_a_body_mistake_is_refused_without_naming_a_field(
    api: Api, content: bytes, status: int
) -> None:
    assert_error(await post_raw(api, content), status, no_field=True)


async def test_deeply_nested_json_is_a_client_error_not_a_500(api: Api) -> None:
    depth = 5000  # well under 64 KiB, far deeper than any parser recursion limit
    body = (
        b'{"task_id": "'
        + new_id().encode()
        + b'", "metadata": {"a": '
        + b"[" * depth
        + b"]" * depth
        + b"}}"
    )
    assert len(body) < MAX_BODY
    response = await post_raw(api, body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert is_error_shape(response), response.text


async def test_a_body_over_64_kib_with_content_length_is_413(api: Api) -> None:
    body = json.dumps({"task_id": new_id(), "metadata": {"pad": "x" * MAX_BODY}}).encode()
    response = await post_raw(api, body)
    assert_error(response, 413)


async def test_a_body_of_exactly_64_kib_is_not_413(api: Api) -> None:
    head = json.dumps({"task_id": new_id(), "pad": ""}).encode()
    body = head[:-2] + b"x" * (MAX_BODY - len(head)) + head[-2:]
    assert len(body) == MAX_BODY
    response = await post_raw(api, body)
    assert response.status_code == 201, response.text


async def test_a_chunked_body_over_64_kib_is_413(api: Api) -> None:
    task_id = new_id()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"task_id": "' + task_id.encode() + b'", "pad": "'
        for _ in range(9):
            yield b"x" * 8192
        yield b'"}'

    response = await api.client.post(
        "/v1/tasks", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_error(response, 413)
    assert (await api.task(task_id)).status_code == 404


async def test_a_small_chunked_body_is_accepted(api: Api) -> None:
    task_id = new_id()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"task_id": '
        yield b'"' + task_id.encode() + b'"}'

    response = await api.client.post(
        "/v1/tasks", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "json"],
)
async def test_a_wrong_content_type_is_415(api: Api, content_type: str) -> None:
    body = json.dumps({"task_id": new_id()}).encode()
    assert_error(await post_raw(api, body, content_type), 415, no_field=True)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd+json"]
)
async def test_json_content_types_are_accepted(api: Api, content_type: str) -> None:
    body = json.dumps({"task_id": new_id()}).encode()
    assert (await post_raw(api, body, content_type)).status_code == 201


# --- authentication -----------------------------------------------------------------------

AUTH_MISTAKES: list[tuple[str, str | None]] = [
    ("missing", None),
    ("empty", ""),
    ("scheme only", "Bearer"),
    ("colon instead of space", "Bearer:key-alpha-0123456789"),
    ("token scheme", "Token key-alpha-0123456789"),
    ("no scheme", "key-alpha-0123456789"),
    ("basic scheme", "Basic a2V5LWFscGhhLTAxMjM0NTY3ODk6"),
    ("unknown key", "Bearer key-gamma-0123456789"),
    ("key with suffix", "Bearer key-alpha-0123456789-3"),
    ("key prefix", "Bearer key-alpha-012345678"),
    ("two tokens", "Bearer key-alpha-0123456789 key-beta-0123456789"),
]


@pytest.mark.parametrize(
    "authorization", [a for _, a in AUTH_MISTAKES], ids=[n for n, _ in AUTH_MISTAKES]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/tasks"),
        ("GET", f"/v1/tasks/{UUID}"),
        ("DELETE", f"/v1/tasks/{UUID}"),
        ("GET", f"/v1/tasks/{UUID}/deliveries"),
        ("POST", f"/v1/tasks/{UUID}/redeliver"),
    ],
)
async def test_a_bad_key_is_401(
    api: Api, authorization: str | None, method: str, path: str
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    async with httpx.AsyncClient(base_url=str(api.client.base_url), timeout=10) as bare:
        response = await bare.request(
            method, path, headers=headers, json={"task_id": new_id()} if method == "POST" else None
        )
    assert_error(response, 401)


async def test_the_bearer_scheme_is_case_insensitive(api: Api) -> None:
    response = await api.client.post(
        "/v1/tasks",
        json={"task_id": new_id()},
        headers={"authorization": "bearer key-alpha-0123456789"},
    )
    assert response.status_code == 201


# --- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/v1"),
        ("GET", "/v2/tasks"),
        ("POST", "/v1/task"),
        ("GET", f"/v1/tasks/{UUID}/nothing"),
    ],
)
async def test_an_unknown_route_is_404_json(api: Api, method: str, path: str) -> None:
    assert_error(await api.client.request(method, path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/v1/tasks"),
        ("PUT", "/v1/tasks"),
        ("DELETE", "/v1/tasks"),
        ("PUT", f"/v1/tasks/{UUID}"),
        ("PATCH", f"/v1/tasks/{UUID}"),
        ("POST", f"/v1/tasks/{UUID}"),
        ("POST", f"/v1/tasks/{UUID}/deliveries"),
        ("GET", f"/v1/tasks/{UUID}/redeliver"),
        ("POST", "/healthz"),
    ],
)
async def test_a_wrong_method_is_405_json(api: Api, method: str, path: str) -> None:
    assert_error(await api.client.request(method, path), 405)


NOT_UUIDS = [
    "not-a-uuid",
    "12345",
    "550e8400-e29b-41d4-a716-44665544000",
    "550e8400e29b41d4a716446655440000",
    "%7B550e8400-e29b-41d4-a716-446655440000%7D",
    "urn:uuid:550e8400-e29b-41d4-a716-446655440000",
    "550e8400-e29b-41d4-a716-44665544000z",
]


@pytest.mark.parametrize("bad_id", NOT_UUIDS)
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("DELETE", ""), ("GET", "/deliveries"), ("POST", "/redeliver")],
)
async def test_a_path_id_that_is_not_a_uuid_is_404(
    api: Api, bad_id: str, method: str, suffix: str
) -> None:
    assert_error(await api.client.request(method, f"/v1/tasks/{bad_id}{suffix}"), 404)


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("DELETE", ""), ("GET", "/deliveries"), ("POST", "/redeliver")],
)
async def test_an_unregistered_task_is_404(api: Api, method: str, suffix: str) -> None:
    assert_error(await api.client.request(method, f"/v1/tasks/{new_id()}{suffix}"), 404)


# --- idempotency --------------------------------------------------------------------------


async def test_the_same_registration_twice_is_201_then_200_with_the_same_resource(
    api: Api,
) -> None:
    task_id = new_id()
    fields = {"webhook_url": HOOK, "events": ["task.succeeded"], "metadata": {"user": 7}}
    first = await api.register(task_id, **fields)
    second = await api.register(task_id, **fields)
    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json() == first.json()
    assert (await api.task(task_id)).json() == first.json()


async def test_events_in_another_order_are_the_same_registration(api: Api) -> None:
    task_id = new_id()
    first = await api.register(task_id, events=["task.progress", "task.failed", "task.succeeded"])
    again = await api.register(task_id, events=["task.succeeded", "task.progress", "task.failed"])
    assert first.status_code == 201
    assert again.status_code == 200, again.text
    assert set(again.json()["events"]) == {"task.progress", "task.failed", "task.succeeded"}


async def test_omitted_events_equal_the_three_final_ones(api: Api) -> None:
    task_id = new_id()
    first = await api.register(task_id)
    assert first.status_code == 201
    assert set(first.json()["events"]) == FINAL_EVENTS
    assert len(first.json()["events"]) == 3
    again = await api.register(task_id, events=["task.timed_out", "task.failed", "task.succeeded"])
    assert again.status_code == 200, again.text


CONFLICTS = [
    ("webhook_url", {"webhook_url": HOOK + "/other"}),
    ("webhook_url", {"webhook_url": None}),
    ("events", {"events": ["task.succeeded"]}),
    ("events", {"events": ["task.progress", "task.succeeded", "task.failed", "task.timed_out"]}),
    ("events", {"events": []}),
    ("metadata", {"metadata": {"user": 8}}),
    ("metadata", {"metadata": {}}),
    ("metadata", {"metadata": {"user": 7, "extra": True}}),
]


@pytest.mark.parametrize(("field", "change"), CONFLICTS)
async def test_the_same_task_with_other_values_is_409_naming_the_field(
    api: Api, field: str, change: dict[str, Any]
) -> None:
    task_id = new_id()
    original = {"webhook_url": HOOK, "events": sorted(FINAL_EVENTS), "metadata": {"user": 7}}
    assert (await api.register(task_id, **original)).status_code == 201
    response = await api.register(task_id, **{**original, **change})
    assert_error(response, 409, field)
    assert (await api.task(task_id)).json()["metadata"] == {"user": 7}, "the original stays"


async def test_unknown_body_fields_are_ignored(api: Api) -> None:
    task_id = new_id()
    first = await api.register(task_id, colour="blue", nested={"a": [1, 2]})
    assert first.status_code == 201, first.text
    assert "colour" not in first.json()
    again = await api.register(task_id, something_else=1)
    assert again.status_code == 200, again.text


async def test_events_empty_is_accepted(api: Api) -> None:
    task_id = new_id()
    response = await api.register(task_id, webhook_url=HOOK, events=[])
    assert response.status_code == 201, response.text
    assert response.json()["events"] == []
    assert (await api.register(task_id, webhook_url=HOOK, events=[])).status_code == 200


async def test_null_optional_fields_mean_omitted(api: Api) -> None:
    task_id = new_id()
    response = await api.register(task_id, webhook_url=None, events=None, metadata=None)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["webhook_url"] is None
    assert set(body["events"]) == FINAL_EVENTS
    assert body["metadata"] == {}
    assert (await api.register(task_id)).status_code == 200


async def test_an_upper_case_uuid_is_stored_in_canonical_lower_case(api: Api) -> None:
    task_id = new_id()
    response = await api.register(task_id.upper())
    assert response.status_code == 201, response.text
    assert response.json()["task_id"] == task_id
    assert (await api.task(task_id)).json()["task_id"] == task_id
    assert (await api.task(task_id.upper())).status_code == 200
    assert (await api.register(task_id)).status_code == 200, "the same task, not a new one"


# --- tenants ------------------------------------------------------------------------------


async def test_a_task_is_invisible_to_another_tenant_but_shared_by_its_own_keys(
    api: Api,
) -> None:
    task_id = new_id()
    assert (
        await api.register(task_id, key="key-alpha-0123456789", webhook_url=HOOK)
    ).status_code == 201
    beta = {"authorization": "Bearer key-beta-0123456789"}
    alpha2 = {"authorization": "Bearer key-alpha-0123456789-2"}

    assert_error(await api.client.get(f"/v1/tasks/{task_id}", headers=beta), 404)
    assert_error(await api.client.get(f"/v1/tasks/{task_id}/deliveries", headers=beta), 404)
    assert_error(await api.client.post(f"/v1/tasks/{task_id}/redeliver", headers=beta), 404)
    assert_error(await api.client.delete(f"/v1/tasks/{task_id}", headers=beta), 404)

    # beta's DELETE took nothing away from alpha; alpha's second key sees the same task.
    seen = await api.client.get(f"/v1/tasks/{task_id}", headers=alpha2)
    assert seen.status_code == 200
    assert seen.json()["webhook_url"] == HOOK
    listing = await api.client.get(f"/v1/tasks/{task_id}/deliveries", headers=alpha2)
    assert listing.status_code == 200 and listing.json() == {"deliveries": []}
    no_event = await api.client.post(f"/v1/tasks/{task_id}/redeliver", headers=alpha2)
    assert_error(no_event, 409)
    # the second key registering the same values is the same registration
    assert (
        await api.register(task_id, key="key-alpha-0123456789-2", webhook_url=HOOK)
    ).status_code == 200

    # beta may register the same task_id with its own values: its own registration.
    other = await api.register(task_id, key="key-beta-0123456789", webhook_url=HOOK + "/beta")
    assert other.status_code == 201
    assert (await api.task(task_id)).json()["webhook_url"] == HOOK

    assert (await api.client.delete(f"/v1/tasks/{task_id}", headers=alpha2)).status_code == 204
    assert (await api.task(task_id)).status_code == 404
    assert (await api.task(task_id, key="key-beta-0123456789")).json()[
        "webhook_url"
    ] == HOOK + "/beta"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_endpoints_need_no_key(api: Api, path: str) -> None:
    async with httpx.AsyncClient(base_url=str(api.client.base_url), timeout=10) as bare:
        response = await bare.get(path)
    assert response.status_code == 200, response.text


# --- the resource -------------------------------------------------------------------------


async def test_the_resource_has_exactly_the_contracts_shape(api: Api) -> None:
    task_id = new_id()
    response = await api.register(
        task_id, webhook_url=HOOK, events=["task.progress"], metadata={"a": {"b": [1, "2"]}}
    )
    assert response.status_code == 201
    for body in (response.json(), (await api.task(task_id)).json()):
        assert set(body) == RESOURCE_KEYS
        assert body["task_id"] == task_id
        assert body["status"] in {"queued", "running", "succeeded", "failed", "timed_out"}
        assert body["progress"] is None
        assert body["error"] is None
        assert set(body["result"]) == RESULT_KEYS
        assert body["result"] == {
            "images": [],
            "grid_image": None,
            "videos": [],
            "content": [],
            "seed": None,
        }
        assert body["webhook_url"] == HOOK
        assert body["events"] == ["task.progress"]
        assert body["metadata"] == {"a": {"b": [1, "2"]}}
        assert RFC3339_Z.match(body["registered_at"]), body["registered_at"]
        assert RFC3339_Z.match(body["updated_at"]), body["updated_at"]
        assert body["completed_at"] is None
        assert body["polls"] == 0


# --- SSRF at registration -----------------------------------------------------------------

PRIVATE_HOOKS = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "https://localhost:8443/hook",
    "http://LOCALHOST/hook",
    "http://api.localhost/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://127.1/hook",
]


@pytest.mark.parametrize("env_overrides", [{"RELAY_ALLOW_PRIVATE_WEBHOOKS": "0"}])
@pytest.mark.parametrize("url", PRIVATE_HOOKS)
async def test_a_private_webhook_url_is_refused(api: Api, url: str) -> None:
    task_id = new_id()
    assert_error(await api.register(task_id, webhook_url=url), 422, "webhook_url")
    assert (await api.task(task_id)).status_code == 404


@pytest.mark.parametrize("env_overrides", [{"RELAY_ALLOW_PRIVATE_WEBHOOKS": "0"}])
async def test_a_host_that_does_not_resolve_is_accepted(api: Api) -> None:
    response = await api.register(new_id(), webhook_url="https://nonexistent.invalid/hook")
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("env_overrides", [{"RELAY_ALLOW_PRIVATE_WEBHOOKS": "0"}])
async def test_a_public_literal_address_is_accepted(api: Api) -> None:
    response = await api.register(new_id(), webhook_url="https://93.184.215.14/hook")
    assert response.status_code == 201, response.text


async def test_private_webhooks_pass_when_allowed(api: Api) -> None:
    # fast_env sets RELAY_ALLOW_PRIVATE_WEBHOOKS=1
    response = await api.register(new_id(), webhook_url="http://127.0.0.1:9/hook")
    assert response.status_code == 201, response.text


# --- arbitrary input never makes a 5xx ----------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
plausible_fields = st.fixed_dictionaries(
    {"task_id": st.uuids().map(str) | json_values},
    optional={
        "webhook_url": st.sampled_from([HOOK, "http://127.0.0.1:9/x", "ftp://x", ""]) | json_values,
        "events": st.lists(
            st.sampled_from(["task.progress", "task.succeeded", "task.failed", "x"]), max_size=5
        )
        | json_values,
        "metadata": st.dictionaries(st.text(max_size=10), json_values) | json_values,
        "extra": json_values,
    },
)


def check_no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if 400 <= response.status_code < 500:
        assert is_error_shape(response), response.text
    else:
        assert response.status_code in (200, 201), response.text


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=json_values | plausible_fields)
async def test_arbitrary_json_never_gives_a_5xx(api: Api, payload: Any) -> None:
    response = await api.client.post(
        "/v1/tasks",
        content=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
    )
    check_no_server_error(response)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=300))
async def test_arbitrary_bytes_never_give_a_5xx(api: Api, content: bytes) -> None:
    check_no_server_error(await post_raw(api, content))


# --- Redis down ---------------------------------------------------------------------------


async def test_with_redis_unreachable_calls_that_need_it_are_503() -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings_ = load_settings(fast_env(closed, "http://127.0.0.1:9"))
    async with Api(settings_) as down:
        register = await down.register(new_id())
        assert_error(register, 503)
        assert_error(await down.task(new_id()), 503)
        assert_error(await down.client.get(f"/v1/tasks/{new_id()}/deliveries"), 503)
        async with httpx.AsyncClient(base_url=str(down.client.base_url), timeout=10) as bare:
            assert_error(await bare.get("/readyz"), 503)
            assert (await bare.get("/healthz")).status_code == 200
            # client mistakes are still told as such, not hidden behind the 503
            assert_error(await bare.post("/v1/tasks", json={"task_id": new_id()}), 401)
        assert_error(await down.client.post("/v1/tasks", json={"task_id": "x"}), 422, "task_id")
