"""No client input answers 5xx: deep, long or odd values anywhere, in bodies, paths and queries.

CONTRACT.md: "nothing a client sends, however deep, long or odd, answers 5xx"; `metadata`
nests at most 32 levels (422 naming `metadata`). The bounds are read before Redis is
touched: a cursor is decoded to its exact shape, a delivery id must have the shape the
relay gives ids (a suffix such as `:attempts` would name another key of another type).

The last test drives every route with generated input (hypothesis) against the real app on
the session's real Redis, with real tasks and deliveries of two tenants in it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.api.validation import MAX_METADATA_DEPTH, deepest_member, nesting_depth
from relay.settings import Settings
from support.payloads import finished, new_id
from support.servers import Receiver, ScriptedUpstream
from support.waiting import eventually
from tests.conftest import API_KEYS, Api, running_worker

ALPHA, BETA = (entry.split("=", 1)[1] for entry in API_KEYS.split(",")[::2])
UPSTREAM_SECRET = "upstream-hook-secret"  # fast_env's RELAY_UPSTREAM_WEBHOOK_SECRET


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def nested(depth: int, leaf: bytes = b"1", kinds: bytes = b"{[") -> bytes:
    """JSON nested `depth` levels, alternating objects and arrays as `kinds` says."""
    opening, closing = [], []
    for level in range(depth):
        if kinds[level % len(kinds)] == ord("{"):
            opening.append(b'{"k":')
            closing.append(b"}")
        else:
            opening.append(b"[")
            closing.append(b"]")
    return b"".join(opening) + leaf + b"".join(reversed(closing))


def registration(task_id: str, metadata: bytes) -> bytes:
    return b'{"task_id": "' + task_id.encode() + b'", "metadata": ' + metadata + b"}"


def cursor_of(value: bytes) -> str:
    # Past a few KiB a query string is refused by the HTTP server's own request-line
    # limit (or by the client library) before the relay sees it: the relay's cursors
    # are bounded far below that, so longer ones test nothing of the relay's.
    return base64.urlsafe_b64encode(value[:4500]).decode().rstrip("=")


def assert_client_error(response: httpx.Response, status: int, field: str | None) -> None:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.json()["error"].get("field") == field, response.text[:500]


# --- the pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        pytest.param(1, 0, id="scalar"),
        pytest.param({}, 1, id="empty-object"),
        pytest.param({"a": 1, "b": "x"}, 1, id="flat"),
        pytest.param({"a": []}, 2, id="empty-array-inside"),
        pytest.param({"a": [1, {"b": [2]}]}, 4, id="mixed"),
        pytest.param({"a": 1, "b": {"c": {"d": 1}}, "e": []}, 3, id="deepest-branch-counts"),
        pytest.param(json.loads(nested(32, kinds=b"{")), 32, id="32-objects"),
        pytest.param(json.loads(nested(32)), 32, id="32-mixed"),
        pytest.param(json.loads(nested(33)), 33, id="33-stops-counting-at-the-first-too-deep"),
        pytest.param(json.loads(nested(500)), 33, id="500-still-33"),
    ],
)
def test_nesting_depth(value: Any, depth: int) -> None:
    assert nesting_depth(value, 32) == depth


@pytest.mark.parametrize(
    ("body", "member"),
    [
        pytest.param(registration("x", nested(5000)), "metadata", id="metadata"),
        pytest.param(b'{"metadata": {}, "extra": ' + nested(5000) + b"}", "extra", id="other"),
        pytest.param(b'  {"meta\\u0064ata": ' + nested(900) + b"}", "metadata", id="escaped-name"),
        pytest.param(b'{"a": "{[{[{[", "metadata": [[[]]]}', "metadata", id="brackets-in-a-string"),
        pytest.param(b'{"a\\"": [[[[]]]], "metadata": [[]]}', 'a"', id="escaped-quote-in-name"),
        pytest.param(nested(5000, kinds=b"["), None, id="top-level-array"),
        pytest.param(b'"{{{{"', None, id="a-string"),
        pytest.param(b"{", None, id="only-the-object"),
    ],
)
def test_deepest_member(body: bytes, member: str | None) -> None:
    assert deepest_member(body) == member


# --- the bounds, one by one -----------------------------------------------------------------


async def test_metadata_nests_at_most_32_levels(api: Api) -> None:
    assert MAX_METADATA_DEPTH == 32
    for kinds in (b"{", b"{[", b"[{"):
        at_limit = nested(31, kinds=kinds)  # inside the metadata object: 32 levels in all
        ok = await api.client.post(
            "/v1/tasks", content=registration(new_id(), b'{"a":' + at_limit + b"}")
        )
        assert ok.status_code == 201, ok.text
        for depth in (32, 40, 900, 1100, 20000):
            task_id = new_id()
            body = registration(task_id, b'{"a":' + nested(depth, kinds=kinds) + b"}")
            if len(body) > 64 * 1024:
                continue
            refused = await api.client.post("/v1/tasks", content=body)
            assert_client_error(refused, 422, "metadata")
            assert "32" in refused.json()["error"]["message"]
            assert (await api.task(task_id)).status_code == 404, "nothing stored"


async def register_finishing(api: Api, upstream: ScriptedUpstream, receiver: Receiver) -> str:
    """An alpha task the upstream answers as finished, with a webhook to `receiver`."""
    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    assert (await api.register(task_id, webhook_url=receiver.url + "/a")).status_code == 201
    return task_id


async def test_deep_metadata_on_another_tenants_task_stores_nothing(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, settings: Settings
) -> None:
    """The attack of issue 10: beta registers alpha's task id with metadata 1,100 deep."""
    task_id = await register_finishing(api, upstream, receiver)
    for depth in (33, 1100):
        attack = await api.client.post(
            "/v1/tasks", content=registration(task_id, nested(depth)), headers=bearer(BETA)
        )
        assert_client_error(attack, 422, "metadata")
    assert (await api.task(task_id, key=BETA)).status_code == 404
    async with running_worker(settings):
        await receiver.wait_for(1, task_id=task_id)
    assert [e["type"] for e in receiver.events(task_id)] == ["task.succeeded"]
    # and once final, deep metadata is still a 422, not a 500
    late = await api.client.post("/v1/tasks", content=registration(task_id, nested(1100)))
    assert_client_error(late, 422, "metadata")


@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/deliveries"])
@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(cursor_of(nested(100_000, kinds=b"[")[:3000]), id="deep-array-cut"),
        pytest.param(cursor_of(nested(1500, kinds=b"[")), id="deep-array"),
        pytest.param(cursor_of(nested(1500, kinds=b"{")), id="deep-object"),
        pytest.param(cursor_of(b"[" + nested(1500, kinds=b"[") + b', "x"]'), id="deep-score"),
        pytest.param(cursor_of(b"[1, " + nested(1500, kinds=b"[") + b"]"), id="deep-member"),
        pytest.param(cursor_of(b'[1e999, "x"]'), id="infinite-score"),
        pytest.param(cursor_of(b'[true, "x"]'), id="boolean-score"),
        pytest.param(cursor_of(b'[1, "x", 2]'), id="three-items"),
        pytest.param(cursor_of(b'{"score": 1}'), id="object"),
        pytest.param(cursor_of(b'[1, "' + b"x" * 5000 + b'"]'), id="long"),
        pytest.param("%%%", id="not-base64"),
        pytest.param("\u00e9\u00e9", id="not-ascii"),
    ],
)
async def test_a_cursor_this_api_never_gave_is_400(api: Api, path: str, cursor: str) -> None:
    assert_client_error(await api.client.get(path, params={"cursor": cursor}), 400, "cursor")


async def test_a_delivery_id_with_a_suffix_is_404(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, settings: Settings
) -> None:
    task_id = await register_finishing(api, upstream, receiver)
    async with running_worker(settings):
        await receiver.wait_for(1, task_id=task_id)

        async def listed() -> bool:
            found = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()
            return bool(found["deliveries"]) and bool(found["deliveries"][0]["attempts"])

        await eventually(listed, 10, "the delivery is listed with its attempt")
    (delivery,) = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()["deliveries"]
    own = delivery["id"]
    for odd in (
        f"{own}:attempts",
        f"{own}:attempts:x",
        f"{own}x",
        own.upper(),
        own[:-1],
        f" {own}",
    ):
        reply = await api.client.post(f"/v1/deliveries/{quote(odd, safe=':')}/redeliver")
        assert_client_error(reply, 404, None)
    again = await api.client.post(f"/v1/deliveries/{own}/redeliver")
    assert again.status_code == 202, again.text  # the control: the id itself is fine
    assert_client_error(
        await api.client.post(f"/v1/deliveries/{own}/redeliver", headers=bearer(BETA)), 404, None
    )


# --- every route, generated input -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seeded:
    """Real tasks and deliveries of both tenants, for the generated calls to aim at."""

    task_ids: tuple[str, ...]
    delivery_ids: tuple[str, ...]
    cursors: tuple[str, ...]


@pytest.fixture
async def seeded(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, settings: Settings
) -> AsyncIterator[Seeded]:
    """Two tasks per tenant, one delivered and one whose every attempt failed.

    The worker stops before any generated call: nothing generated is delivered.
    """
    tasks: list[str] = []
    failing = Receiver()  # a receiver of its own, so that its failures hold no other one
    failing.answers = [500] * 1000
    await failing.start()
    async with running_worker(settings):
        for key, target in ((ALPHA, failing), (BETA, failing), (ALPHA, receiver), (BETA, receiver)):
            task_id = new_id()
            upstream.script(task_id, finished(task_id))
            reply = await api.register(task_id, key=key, webhook_url=f"{target.url}/{task_id}")
            assert reply.status_code == 201, reply.text
            tasks.append(task_id)
            await target.wait_for(1, task_id=task_id)

        async def all_ended() -> bool:
            for task_id, key in zip(tasks, (ALPHA, BETA, ALPHA, BETA), strict=True):
                found = await api.client.get(f"/v1/tasks/{task_id}/deliveries", headers=bearer(key))
                if [d["status"] for d in found.json()["deliveries"]] not in (
                    ["failed"],
                    ["delivered"],
                ):
                    return False
            return True

        await eventually(all_ended, 15, "the seeded deliveries ended")
    await failing.stop()
    deliveries: list[str] = []
    for task_id, key in zip(tasks, (ALPHA, BETA, ALPHA, BETA), strict=True):
        found = await api.client.get(f"/v1/tasks/{task_id}/deliveries", headers=bearer(key))
        deliveries += [d["id"] for d in found.json()["deliveries"]]
    cursors = []
    for path in ("/v1/tasks", "/v1/deliveries"):
        page = (await api.client.get(path, params={"limit": 1})).json()
        cursors.append(page["next_cursor"] or "")
    yield Seeded(tuple(tasks), tuple(deliveries), tuple(c for c in cursors if c))


def odd_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Short text of any characters, or long text (kept under what an HTTP parser takes)."""
    return st.text(max_size=max_size) | st.text(min_size=200, max_size=1000)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | odd_text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text(8), inner, max_size=4),
    max_leaves=12,
)


# Around the relay's bound, around what a decoder's recursion takes, and far past both.
depths = st.sampled_from([31, 32, 33, 500, 999, 1000, 1001, 1100, 5000]) | st.integers(1, 8000)


def encoded(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def json_bodies(draw: st.DrawFn, *, fields: dict[str, st.SearchStrategy[Any]]) -> bytes:
    """A body near the route's own (its fields, some odd or deep), or any JSON, or bytes."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        return encoded(draw(json_values))
    parts = [
        b'"' + name.encode() + b'": ' + encoded(draw(strategy))
        for name, strategy in fields.items()
        if draw(st.booleans())
    ]
    if draw(st.integers(0, 3)) == 0:  # one member nested deep, maybe past what a decoder takes
        name = draw(st.sampled_from([*fields, "extra"]))
        depth = draw(depths)
        parts.append(
            b'"'
            + name.encode()
            + b'": '
            + nested(depth, kinds=draw(st.sampled_from([b"{", b"[", b"{["])))
        )
    return b"{" + b", ".join(parts) + b"}"


def uuid_spellings(seeded: Seeded) -> st.SearchStrategy[str]:
    known = st.sampled_from(seeded.task_ids)
    return (
        known
        | st.uuids().map(str)
        | known.map(str.upper)
        | known.map(lambda t: "{" + t + "}")
        | known.map(lambda t: "urn:uuid:" + t)
        | known.map(lambda t: t.replace("-", ""))
        | known.map(lambda t: t + ":attempts")
        | odd_text()
    )


def delivery_spellings(seeded: Seeded) -> st.SearchStrategy[str]:
    """Real ids of both tenants, as they are and with what names other keys, or made up."""
    suffixes = ["", ":attempts", ":attempts:x", ":", "x", "%00", "*", "?"]
    variants = [d + s for d in seeded.delivery_ids for s in suffixes]
    variants += [d[:-1] for d in seeded.delivery_ids] + [d.upper() for d in seeded.delivery_ids]
    known = st.sampled_from(variants)
    return known | known | st.from_regex(r"dlv_[0-9a-f]{26}", fullmatch=True) | odd_text()


def cursors(seeded: Seeded) -> st.SearchStrategy[str]:
    raw = st.one_of(
        st.builds(lambda d: nested(d, kinds=b"["), depths),
        st.builds(lambda v: encoded(v), st.tuples(json_values, json_values).map(list)),
        st.builds(lambda v: encoded(v), json_values),
        st.binary(max_size=64),
    )
    return st.sampled_from(seeded.cursors) | raw.map(cursor_of) | odd_text()


def waits() -> st.SearchStrategy[str]:
    def long(raw: str) -> bool:
        try:
            return 0 < int(raw) <= 60
        except ValueError:
            return False

    return st.sampled_from(["0", "-1", "61", "1e9", "", "9" * 5000, "0x10"]) | odd_text().filter(
        lambda raw: not long(raw)
    )


def query(names: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({}, optional={**names, "extra": odd_text()})


def path_segment(raw: str) -> str:
    return quote(raw, safe=":@!$&'()*+,;=-._~")


@st.composite
def calls(
    draw: st.DrawFn, seeded: Seeded, route: str
) -> tuple[str, str, dict[str, str], bytes | None, str]:
    """(method, path, query, body, key) for one route, its input generated."""
    task = path_segment(draw(uuid_spellings(seeded)))
    listing = {
        "limit": st.integers(-5, 300).map(str) | odd_text(),
        "cursor": cursors(seeded),
    }
    body: bytes | None = None
    if route == "register":
        method, path, params = "POST", "/v1/tasks", {}
        body = draw(
            json_bodies(
                fields={
                    "task_id": uuid_spellings(seeded) | json_values,
                    "webhook_url": st.sampled_from(["http://127.0.0.1:9/x", "ftp://x", ""])
                    | odd_text(3000)
                    | json_values,
                    "events": st.lists(
                        st.sampled_from(["task.progress", "task.succeeded", "task.failed", "x"])
                    )
                    | json_values,
                    "metadata": st.dictionaries(odd_text(8), json_values) | json_values,
                    "upstream_webhook": st.booleans() | json_values,
                }
            )
        )
    elif route == "get":
        method, path, params = "GET", f"/v1/tasks/{task}", {}
    elif route == "delete":
        method, path, params = "DELETE", f"/v1/tasks/{task}", {}
    elif route == "list":
        statuses = st.sampled_from(["queued", "running", "succeeded", "failed", "timed_out"])
        method, path = "GET", "/v1/tasks"
        params = draw(query({**listing, "status": statuses | odd_text()}))
    elif route == "deliveries":
        method, path, params = "GET", f"/v1/tasks/{task}/deliveries", {}
    elif route == "redeliver":
        method, path, params = "POST", f"/v1/tasks/{task}/redeliver", {}
    elif route == "wait":
        method, path = "GET", f"/v1/tasks/{task}/wait"
        params = draw(query({"timeout": waits()}))
    elif route == "failed":
        method, path = "GET", "/v1/deliveries"
        params = draw(query({**listing, "status": st.just("failed") | odd_text()}))
    elif route == "redeliver_one":
        delivery = path_segment(draw(delivery_spellings(seeded)))
        method, path, params = "POST", f"/v1/deliveries/{delivery}/redeliver", {}
    elif route == "redeliver_failed":
        method, path, params = "POST", "/v1/deliveries/redeliver", {}
    else:
        assert route == "upstream_webhook", route
        method, path, params = "POST", "/v1/upstream/webhook", {}
        body = draw(
            json_bodies(
                fields={
                    "task_id": uuid_spellings(seeded) | json_values,
                    "status": st.sampled_from(["finished", "failed", "processing"]) | json_values,
                    "percentage": st.sampled_from(["50", "100", "-1", "1e9"]) | json_values,
                    "image_url": odd_text(3000) | json_values,
                    "image_urls": st.lists(odd_text()) | json_values,
                    "task_type": json_values,
                    "model": json_values,
                }
            )
        )
    return method, path, params, body, draw(st.sampled_from([ALPHA, BETA]))


ROUTES = [
    "register",
    "get",
    "delete",
    "list",
    "deliveries",
    "redeliver",
    "wait",
    "failed",
    "redeliver_one",
    "redeliver_failed",
    "upstream_webhook",
]


@pytest.mark.parametrize("route", ROUTES)
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
async def test_no_generated_call_answers_5xx(
    api: Api, seeded: Seeded, route: str, data: st.DataObject
) -> None:
    method, path, params, body, key = data.draw(calls(seeded, route))
    headers = {**bearer(key), "x-webhook-secret": UPSTREAM_SECRET}
    if body is not None:
        headers["content-type"] = data.draw(
            st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain"])
        )
    response = await api.client.request(method, path, params=params, content=body, headers=headers)
    where = f"{method} {path[:200]} {str(params)[:200]} {(body or b'')[:200]!r}"
    assert response.status_code < 500, (where, response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = msgspec.json.decode(response.content)["error"]
        assert error["code"] and error["message"], where
