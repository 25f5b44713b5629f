"""Webhooks never reach the relay's own network unless allowed, and secrets never leak.

- the webhook transport, guarded, refuses loopback however it is spelled;
- a host that did not resolve at registration but resolves to a private address
  at delivery fails each attempt as `blocked`;
- with DEBUG logs, neither `relay api` nor `relay worker` prints a secret, and no
  API answer contains one.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from redis.asyncio import Redis

from relay.devtools.redis_server import RedisServer, free_port
from relay.outbound import AddressGuard, AiohttpTransport, TransportError
from tests.conftest import Api, fast_env
from tests.reliability import Proc, answer, clean_env, eventually, finished, wait_ready
from tests.servers import Canned, Receiver, ScriptedUpstream

LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://[::1]:{port}/",
    "http://LOCALHOST:{port}/hook",
    "http://127.0.0.2:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
]
# aiohttp refuses these as not canonical before any connection: refused all the same.
ODD_SPELLINGS = ["http://127.1:{port}/", "http://2130706433:{port}/", "http://0x7f.0.0.1:{port}/"]


@pytest.fixture
async def guarded() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(guard=AddressGuard(False), read_limit=64 * 1024)
    yield transport
    await transport.close()


@pytest.mark.parametrize("template", LOOPBACK_SPELLINGS + ODD_SPELLINGS)
async def test_the_guarded_transport_refuses_loopback(
    guarded: AiohttpTransport, receiver: Receiver, template: str
) -> None:
    url = template.format(port=receiver.port)
    with pytest.raises(TransportError) as caught:
        await guarded.post(url, b"{}", {"content-type": "application/json"}, 2.0)
    if template in LOOPBACK_SPELLINGS:
        assert caught.value.kind == "blocked", (caught.value.kind, str(caught.value))
    await asyncio.sleep(0.05)
    assert receiver.received == []


async def test_the_same_receiver_is_reached_when_private_webhooks_are_allowed(
    receiver: Receiver,
) -> None:
    """The control for the test above: the port does answer."""
    transport = AiohttpTransport(guard=AddressGuard(True))
    try:
        reply = await transport.post(
            f"http://127.0.0.1:{receiver.port}/", b"{}", {"content-type": "application/json"}, 2
        )
    finally:
        await transport.close()
    assert reply.status == 204
    assert len(receiver.received) == 1


NO_PRIVATE = {"RELAY_ALLOW_PRIVATE_WEBHOOKS": "0"}


@pytest.mark.parametrize("env_overrides", [NO_PRIVATE])
async def test_a_name_resolving_to_loopback_at_delivery_is_blocked(
    api: Api,
    worker: dict[str, Any],
    upstream: ScriptedUpstream,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "relay-test.invalid"
    refused = await api.register(str(uuid.uuid4()), webhook_url=f"{receiver.url}/")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "webhook_url"

    task_id = str(uuid.uuid4())
    upstream.script(task_id, finished(task_id))
    accepted = await api.register(task_id, webhook_url=f"http://{name}:{receiver.port}/hook")
    assert accepted.status_code == 201, "a name that does not resolve yet is accepted"

    original = aiohttp.ThreadedResolver.resolve
    asked: list[str] = []

    async def resolve(
        self: aiohttp.ThreadedResolver,
        host: str,
        port: int = 0,
        family: socket.AddressFamily = socket.AF_INET,
    ) -> Any:
        asked.append(host)
        if host == name:  # the DNS changed: the name now leads to loopback
            return [
                {
                    "hostname": host,
                    "host": "127.0.0.1",
                    "port": port,
                    "family": socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            ]
        return await original(self, host, port, family)

    monkeypatch.setattr(aiohttp.ThreadedResolver, "resolve", resolve)

    found: list[dict[str, Any]] = []

    async def failed() -> bool:
        reply = await api.client.get(f"/v1/tasks/{task_id}/deliveries")
        found[:] = reply.json()["deliveries"]
        return [d["status"] for d in found] == ["failed"]

    try:
        await eventually(failed, 10, "the delivery failed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {found}") from None
    attempts = found[0]["attempts"]
    assert len(attempts) == 4, attempts  # the first and the schedule's three retries
    for attempt in attempts:
        assert attempt["status_code"] is None
        assert attempt["error"] and attempt["error"].startswith("blocked"), attempt
    assert name in asked, "the delivery did not resolve the name through the guard"
    assert receiver.received == []


# --- secrets in logs -----------------------------------------------------------------------


async def test_no_secret_in_logs_or_answers(
    redis_server: RedisServer, redis: Redis, receiver: Receiver
) -> None:
    upstream_key = "upk-" + secrets.token_hex(16)
    alpha_keys = ["cak-" + secrets.token_hex(16), "cak2-" + secrets.token_hex(16)]
    beta_key = "cbk-" + secrets.token_hex(16)
    hook_body = base64.b64encode(secrets.token_bytes(24)).decode()
    webhook_secret = "whsec_" + hook_body
    upstream_hook_secret = "uhs-" + secrets.token_hex(16)
    forbidden = {
        "RELAY_UPSTREAM_API_KEY": upstream_key,
        "alpha key": alpha_keys[0],
        "alpha key 2": alpha_keys[1],
        "beta key": beta_key,
        "RELAY_WEBHOOK_SECRET": webhook_secret,
        "the webhook secret's base64": hook_body,
        "RELAY_UPSTREAM_WEBHOOK_SECRET": upstream_hook_secret,
    }

    upstream = ScriptedUpstream(api_key=upstream_key)
    await upstream.start()
    env = clean_env(
        **fast_env(
            redis_server.url,
            upstream.url,
            RELAY_UPSTREAM_API_KEY=upstream_key,
            RELAY_API_KEYS=f"alpha={alpha_keys[0]},alpha={alpha_keys[1]},{beta_key}",
            RELAY_WEBHOOK_SECRET=webhook_secret,
            RELAY_UPSTREAM_WEBHOOK_SECRET=upstream_hook_secret,
            RELAY_LOG_LEVEL="DEBUG",
        )
    )
    port = free_port()
    api = Proc("api", "--port", str(port), env=env)
    worker = Proc("worker", env=env)
    answers: list[httpx.Response] = []
    try:
        base_url = f"http://127.0.0.1:{port}"
        await wait_ready(base_url, api)
        await worker.wait_output("worker started")
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

            async def call(method: str, path: str, key: str | None, **kw: Any) -> httpx.Response:
                headers = kw.pop("headers", {})
                if key is not None:
                    headers["authorization"] = f"Bearer {key}"
                reply = await client.request(method, path, headers=headers, **kw)
                answers.append(reply)
                return reply

            ok_task, retried_task, refused_task = (str(uuid.uuid4()) for _ in range(3))
            upstream.script(
                ok_task, answer(ok_task, "processing", percentage="50"), finished(ok_task)
            )
            upstream.script(retried_task, finished(retried_task))
            receiver.statuses = [500]  # the first webhook is refused, then retried
            events = ["task.progress", "task.succeeded", "task.failed", "task.timed_out"]
            for task_id, key in ((retried_task, alpha_keys[0]), (ok_task, beta_key)):
                reply = await call(
                    "POST",
                    "/v1/tasks",
                    key,
                    json={"task_id": task_id, "webhook_url": receiver.url, "events": events},
                )
                assert reply.status_code == 201, reply.text
            await receiver.wait_for(4, timeout=15)

            # Every kind of answer the API gives, with right and wrong credentials.
            await call("GET", f"/v1/tasks/{retried_task}", alpha_keys[1])
            await call("GET", f"/v1/tasks/{retried_task}/deliveries", alpha_keys[0])
            await call("POST", f"/v1/tasks/{retried_task}/redeliver", alpha_keys[0])
            await call("GET", "/v1/tasks", beta_key)
            await call("GET", f"/v1/tasks/{ok_task}", alpha_keys[0] + "x")
            await call("GET", f"/v1/tasks/{ok_task}", upstream_key)
            await call("GET", f"/v1/tasks/{ok_task}", None, headers={"authorization": beta_key})
            await call("POST", "/v1/tasks", beta_key, content=b"{not json")
            await call("POST", "/v1/tasks", beta_key, json={"task_id": "nope"})
            await call(
                "POST",
                "/v1/upstream/webhook",
                None,
                headers={"x-webhook-secret": upstream_hook_secret + "x"},
                json=finished(ok_task),
            )
            await call(
                "POST",
                "/v1/upstream/webhook",
                None,
                headers={"x-webhook-secret": upstream_hook_secret},
                json=finished(ok_task),
            )
            for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
                await call("GET", path, None)

            # Last, as it holds every poll for a while: the upstream refuses the key.
            upstream.script(refused_task, Canned({"error": "bad key"}, status=401))
            reply = await call("POST", "/v1/tasks", alpha_keys[0], json={"task_id": refused_task})
            assert reply.status_code == 201, reply.text

            async def refused() -> bool:
                return upstream.calls[refused_task] > 0 and "refused" in worker.output()

            await eventually(refused, 10, "the worker saw the upstream's 401")
            await call("GET", "/readyz", None)

        api.sigterm()
        worker.sigterm()
        assert await api.wait(25) == 0, api.output()[-3000:]
        assert await worker.wait(25) == 0, worker.output()[-3000:]
        logs = api.output() + worker.output()
    finally:
        api.close()
        worker.close()
        await upstream.stop()

    assert "webhook attempt" in logs and "500" in logs, "the scenarios did not run"
    for what, secret in forbidden.items():
        assert secret not in logs, f"{what} appears in the logs"
        for reply in answers:
            assert secret not in reply.text, f"{what} appears in {reply.request.url}'s answer"
            assert all(secret not in v for v in reply.headers.values()), what
