"""The client README's examples, run as a newcomer would run them, against a running relay."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from relay_client import AsyncRelayClient

from support.payloads import GRID, finished, processing
from support.servers import Receiver, ScriptedUpstream
from tests.conftest import Api
from tests.kit import ALPHA, WEBHOOK_SECRET, base_url
from tests.kit.serving import served

pytestmark = pytest.mark.usefixtures("worker")

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
TASK_ID = "550e8400-e29b-41d4-a716-446655440000"


def block(starting: str) -> str:
    """The README's python block whose code contains `starting`."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (found,) = [b for b in blocks if starting in b]
    return found


def local(code: str, api: Api, hook: str) -> str:
    return (
        code.replace("http://127.0.0.1:8080", base_url(api))
        .replace("your-key", ALPHA)
        .replace("https://hooks.example.com/relay", hook)
    )


async def test_register_and_wait(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.script(TASK_ID, processing(TASK_ID), finished(TASK_ID))
    code = local(block("task = relay.wait(task_id)  "), api, receiver.url)
    # The blocking client beside the relay, which serves from this event loop.
    await asyncio.to_thread(exec, code, {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "True"
    assert printed[1] == f"{tuple(GRID['image_urls'])!r} {GRID['original_image_url']}"
    await receiver.wait_for(1, task_id=TASK_ID)


async def test_the_ready_endpoint(
    api: Api,
    upstream: ScriptedUpstream,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RELAY_WEBHOOK_SECRET", WEBHOOK_SECRET)
    namespace: dict[str, Any] = {}
    exec(block("# receiver.py"), namespace)
    upstream.script(TASK_ID, processing(TASK_ID), finished(TASK_ID))
    async with served(namespace["app"]) as url, AsyncRelayClient(base_url(api), ALPHA) as relay:
        await relay.register(TASK_ID, webhook_url=url + "/relay", metadata={"order": 42})
        for _ in range(200):
            out = capsys.readouterr().out
            if out:
                break
            await asyncio.sleep(0.05)
    assert out.startswith(f"done {TASK_ID} ")
    assert str(tuple(GRID["image_urls"])) in out and "{'order': 42}" in out
