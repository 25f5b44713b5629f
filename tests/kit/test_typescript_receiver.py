"""examples/typescript-receiver, built with npm and run with Node, as a real task's
webhook_url: it verifies the relay's deliveries with the npm `standardwebhooks` package
and deduplicates them on webhook-id. No npm, no Node, or no registry: the test fails."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from relay_client import AsyncRelayClient
from relay_client.receiver import sign

from relay.devtools.redis_server import free_port
from support.payloads import GRID, finished, new_id, processing
from support.servers import ScriptedUpstream
from tests.conftest import Api
from tests.kit import ALPHA, WEBHOOK_SECRET, base_url
from tests.kit.test_models import TASK

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.timeout(600)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "typescript-receiver"


def run(*command: str, cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example, installed from its lock and compiled."""
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "Node and npm are needed for the TypeScript example"
    copy = tmp_path_factory.mktemp("ts") / "receiver"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("node_modules", "dist"))
    run(npm, "ci", "--no-audit", "--no-fund", cwd=copy)
    run(npm, "run", "build", cwd=copy)
    return copy


@pytest.fixture
async def receiver_url(built: Path, tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    env = {**os.environ, "RELAY_WEBHOOK_SECRET": WEBHOOK_SECRET, "PORT": str(port)}
    env["EVENTS_FILE"] = str(tmp_path / "events.jsonl")
    node = await asyncio.create_subprocess_exec(
        "node", "dist/server.js", cwd=built, env=env, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            for _ in range(200):
                assert node.returncode is None, "the example exited"
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        yield url
    finally:
        node.terminate()
        await node.wait()


async def received(url: str, count: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(200):
            seen: dict[str, Any] = (await http.get("/events")).json()
            if len(seen["events"]) >= count:
                return seen
            await asyncio.sleep(0.05)
    raise AssertionError(f"the example received {seen}")


async def test_the_example_verifies_and_deduplicates_real_deliveries(
    api: Api, upstream: ScriptedUpstream, receiver_url: str, tmp_path: Path
) -> None:
    task_id = new_id()
    upstream.script(task_id, processing(task_id), finished(task_id))
    async with AsyncRelayClient(base_url(api), ALPHA) as client:
        await client.register(
            task_id,
            webhook_url=receiver_url + "/webhooks",
            events=["task.progress", "task.succeeded"],
        )
        seen = await received(receiver_url, 2)
        assert [(e["type"], e["status"]) for e in seen["events"]] == [
            ("task.progress", "running"),
            ("task.succeeded", "succeeded"),
        ]
        assert {e["task_id"] for e in seen["events"]} == {task_id}
        by_type = {d.type: d for d in await client.deliveries(task_id)}
        assert [e["id"] for e in seen["events"]] == [
            by_type["task.progress"].webhook_id,
            by_type["task.succeeded"].webhook_id,
        ]
        # The same event again: answered 2xx, counted as a duplicate, not handled twice.
        await client.redeliver(task_id)
        for _ in range(200):
            final = next(d for d in await client.deliveries(task_id) if d.type == "task.succeeded")
            if len(final.attempts) == 2 and final.status == "delivered":
                break
            await asyncio.sleep(0.05)
        assert [a.status_code for a in final.attempts] == [200, 200]
        seen = await received(receiver_url, 2)
        assert len(seen["events"]) == 2 and seen["duplicates"] == 1
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    written = [json.loads(line) for line in lines]
    assert written[-1]["data"]["result"]["images"] == GRID["image_urls"]


async def test_the_example_refuses_forgeries(receiver_url: str) -> None:
    body = json.dumps({"type": "task.succeeded", "timestamp": "2026-11-29T10:00:06Z", "data": TASK})
    forged = sign("whsec_c29tZW9uZSBlbHNl", body.encode())
    good = sign(WEBHOOK_SECRET, body.encode())
    async with httpx.AsyncClient(base_url=receiver_url) as http:
        assert (await http.post("/webhooks", content=body, headers=forged)).status_code == 401
        tampered = body.replace("midjourney", "midjourneY")
        assert (await http.post("/webhooks", content=tampered, headers=good)).status_code == 401
        stale = sign(WEBHOOK_SECRET, body.encode(), timestamp=1_000_000_000)
        assert (await http.post("/webhooks", content=body, headers=stale)).status_code == 401
        assert (await http.post("/webhooks", content=body)).status_code == 400
        assert (await http.get("/events")).json() == {"events": [], "duplicates": 0}
        assert (await http.post("/webhooks", content=body, headers=good)).status_code == 200
