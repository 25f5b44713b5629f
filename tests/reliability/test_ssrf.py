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
import ipaddress
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from redis.asyncio import Redis

from relay.devtools.redis_server import RedisServer, free_port
from relay.outbound import AddressGuard, AiohttpTransport, TransportError
from support.payloads import answer, finished, new_id
from support.processes import Proc, clean_env, wait_ready
from support.servers import Canned, Receiver, ScriptedUpstream
from support.waiting import eventually
from tests.conftest import Api, fast_env
from workers.worker import WorkerContext

LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://[::1]:{port}/",
    "http://LOCALHOST:{port}/hook",
    "http://127.0.0.2:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[::ffff:0:7f00:1]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://[2002:7f00:1::1]:{port}/",
    # numeric forms the C resolver reads as 127.0.0.1
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f.0.0.1:{port}/",
    "http://0x7f.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://017700000001:{port}/",
]


@pytest.fixture
async def guarded() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(guard=AddressGuard(False), read_limit=64 * 1024)
    yield transport
    await transport.close()


@pytest.mark.parametrize("template", LOOPBACK_SPELLINGS)
async def test_the_guarded_transport_refuses_loopback(
    guarded: AiohttpTransport, receiver: Receiver, template: str
) -> None:
    url = template.format(port=receiver.port)
    with pytest.raises(TransportError) as caught:
        await guarded.post(url, b"{}", {"content-type": "application/json"}, 2.0)
    assert caught.value.kind == "blocked", (caught.value.kind, str(caught.value))
    assert "127.0.0.1" not in str(caught.value) or "127.0.0.1" in url, str(caught.value)
    await asyncio.sleep(0.05)
    assert receiver.received == []


def test_aiohttp_refuses_non_canonical_numeric_hosts_itself() -> None:
    """The pinned aiohttp (>=3.14.1) refuses them at connection even without the guard."""
    from importlib.metadata import version

    from aiohttp.helpers import is_canonical_ipv4_address

    major, minor, patch = (int(p) for p in version("aiohttp").split(".")[:3])
    assert (major, minor, patch) >= (3, 14, 1)
    assert not is_canonical_ipv4_address("2130706433")
    assert not is_canonical_ipv4_address("127.1")
    assert is_canonical_ipv4_address("127.0.0.1")


async def test_an_unguarded_transport_refuses_non_canonical_numeric_hosts(
    receiver: Receiver,
) -> None:
    """aiohttp itself: `2130706433` is not sent to the socket layer as 127.0.0.1."""
    transport = AiohttpTransport(guard=None)
    try:
        for host in ("2130706433", "127.1", "017700000001"):
            with pytest.raises(TransportError):
                await transport.post(
                    f"http://{host}:{receiver.port}/", b"{}", {"content-type": "x"}, 2.0
                )
    finally:
        await transport.close()
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


def resolve_to(monkeypatch: pytest.MonkeyPatch, name: str, addresses: list[str]) -> list[str]:
    """Make aiohttp's resolver answer `addresses` for `name` (as a changed DNS would).

    Returns the list of hosts it is asked for, to show the name went through it.
    """
    original = aiohttp.ThreadedResolver.resolve
    asked: list[str] = []

    async def resolve(
        self: aiohttp.ThreadedResolver,
        host: str,
        port: int = 0,
        family: socket.AddressFamily = socket.AF_INET,
    ) -> Any:
        asked.append(host)
        if host != name:
            return await original(self, host, port, family)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    monkeypatch.setattr(aiohttp.ThreadedResolver, "resolve", resolve)
    return asked


def teredo_url(client: str) -> str:
    inverted = ~int(ipaddress.IPv4Address(client)) & 0xFFFFFFFF
    return f"http://[{ipaddress.IPv6Address((0x20010000_4136E378_800063BF << 32) | inverted)}]/"


# Each is refused at registration with RELAY_ALLOW_PRIVATE_WEBHOOKS=0, accepted with 1.
NON_PUBLIC_HOOKS = [
    "http://[::127.0.0.1]/hook",  # IPv4-compatible
    "http://[::ffff:0:7f00:1]/hook",  # SIIT
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of the metadata server
    "http://[64:ff9b:1::808:808]/hook",  # local-use NAT64, whatever it carries
    "http://[2002:a9fe:a9fe::1]/hook",  # 6to4 of the metadata server
    teredo_url("10.0.0.1"),
    "http://[fec0::1]/hook",  # deprecated site-local
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://168.63.129.16/machine",  # Azure's wire server, in public space
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[ff02::1]/hook",
    "http://[100::1]/hook",
    "http://[2001:db8::1]/hook",
    "http://[4000::1]/hook",  # outside global unicast
    "http://192.0.2.1/hook",
    "http://198.18.0.1/hook",
    "http://[::]/hook",
    "http://2130706433/hook",  # numeric forms: no DNS needed to refuse them
    "http://0x7f.1/hook",
    "http://0177.0.0.1/hook",
    "http://127.1/hook",
    "http://0xA9FEA9FE/latest/meta-data/",
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook",  # fullwidth digits
]
PUBLIC_HOOKS = [
    "https://8.8.8.8/hook",
    "https://[2606:4700::1111]/hook",
    "https://[::ffff:8.8.8.8]/hook",
    "https://[64:ff9b::808:808]/hook",
    "https://[2002:808:808::1]/hook",
    teredo_url("8.8.8.8"),
    "https://168.63.129.17/hook",
]


@pytest.mark.parametrize("env_overrides", [NO_PRIVATE])
async def test_the_address_table_at_registration(api: Api) -> None:
    wrong: list[str] = []
    for url in NON_PUBLIC_HOOKS:
        task_id = new_id()
        reply = await api.register(task_id, webhook_url=url)
        error = reply.json().get("error", {})
        if reply.status_code != 422 or error.get("field") != "webhook_url":
            wrong.append(f"{url} answered {reply.status_code} {reply.text}")
        elif "non-public" not in error["message"] and "loopback" not in error["message"]:
            wrong.append(f"{url}: {error['message']}")
        elif (await api.task(task_id)).status_code != 404:
            wrong.append(f"{url} was stored")
    for url in PUBLIC_HOOKS:
        reply = await api.register(new_id(), webhook_url=url)
        if reply.status_code != 201:
            wrong.append(f"{url} answered {reply.status_code} {reply.text}")
    assert wrong == []


async def test_the_same_table_is_accepted_when_private_webhooks_are_allowed(api: Api) -> None:
    """The control: fast_env sets RELAY_ALLOW_PRIVATE_WEBHOOKS=1."""
    for url in NON_PUBLIC_HOOKS:
        reply = await api.register(new_id(), webhook_url=url)
        assert reply.status_code == 201, (url, reply.text)


# What a name may resolve to at connection time, each refused (with a public one beside it).
RESOLVED_AT_CONNECTION = [
    ["127.0.0.1"],
    ["::1"],
    ["::ffff:127.0.0.1"],
    ["::127.0.0.1"],
    ["::ffff:0:7f00:1"],
    ["64:ff9b:1::1"],
    ["fec0::1"],
    ["10.0.0.1"],
    ["169.254.169.254"],
    ["168.63.129.16"],
    ["fd00:ec2::254"],
    ["93.184.215.14", "127.0.0.1"],
]


@pytest.mark.parametrize("addresses", RESOLVED_AT_CONNECTION, ids=",".join)
async def test_a_name_resolving_to_a_non_public_address_at_connection_is_blocked(
    guarded: AiohttpTransport,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    addresses: list[str],
) -> None:
    name = "hooks.relay-test.invalid"
    asked = resolve_to(monkeypatch, name, addresses)
    with pytest.raises(TransportError) as caught:
        await guarded.post(f"http://{name}:{receiver.port}/", b"{}", {"content-type": "x"}, 2.0)
    assert caught.value.kind == "blocked", (caught.value.kind, str(caught.value))
    assert str(caught.value) == f"{name} resolves to a non-public address"
    assert name in asked
    assert receiver.received == []


@pytest.mark.parametrize("env_overrides", [NO_PRIVATE])
async def test_a_name_resolving_to_loopback_at_delivery_is_blocked(
    api: Api,
    worker: WorkerContext,
    upstream: ScriptedUpstream,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "relay-test.invalid"
    refused = await api.register(new_id(), webhook_url=f"{receiver.url}/")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "webhook_url"

    task_id = new_id()
    upstream.script(task_id, finished(task_id))
    accepted = await api.register(task_id, webhook_url=f"http://{name}:{receiver.port}/hook")
    assert accepted.status_code == 201, "a name that does not resolve yet is accepted"

    asked = resolve_to(monkeypatch, name, ["127.0.0.1"])  # the DNS changed: now loopback

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
        assert "127.0.0.1" not in attempt["error"], "the resolved address is named"
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

            ok_task, retried_task, refused_task = (new_id() for _ in range(3))
            upstream.script(
                ok_task, answer(ok_task, "processing", percentage="50"), finished(ok_task)
            )
            upstream.script(retried_task, finished(retried_task))
            receiver.answers = [500]  # the first webhook is refused, then retried
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
