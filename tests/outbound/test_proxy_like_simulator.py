"""`relay simulator --proxy-like` as a user runs it: over https, every framing of its front
read whole by the relay's transport."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from relay.devtools.redis_server import free_port
from relay.outbound import AiohttpTransport, TransportError
from relay.simulator.framing import PROXY_LIKE
from support.processes import RELAY, clean_env
from tests.simulator.test_simulator import KNOWN_WORDS

TASK = "550e8400-e29b-41d4-a716-446655440000"


@pytest.fixture
def simulator(ca: trustme.CA, tmp_path: Path) -> Iterator[str]:
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    port = free_port()
    args = ["simulator", "--proxy-like", "--port", str(port), "--tls-cert", str(pem)]
    process = subprocess.Popen([str(RELAY), *args], env=clean_env(), stderr=subprocess.PIPE)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr.decode()


async def fetch(transport: AiohttpTransport, base: str) -> bytes:
    body = json.dumps({"task_id": TASK}).encode()
    headers = {"authorization": "any-key", "content-type": "application/json"}
    reply = await transport.post(base + "/api/v1/fetch", body, headers, 5.0)
    assert reply.status == 200, reply
    return reply.body


@pytest.mark.usefixtures("trust_ca")
async def test_every_answer_of_the_proxy_like_simulator_is_read_whole(simulator: str) -> None:
    transport = AiohttpTransport()  # after trust_ca: it reads SSL_CERT_FILE when made
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:
            try:
                first = await fetch(transport, simulator)
                break
            except TransportError as exc:
                assert exc.kind == "connect" and loop.time() < deadline, exc
                await asyncio.sleep(0.1)
        answers = [first] + [await fetch(transport, simulator) for _ in range(2 * len(PROXY_LIKE))]
    finally:
        await transport.close()
    for body in answers:
        task = json.loads(body)
        assert task["task_id"] == TASK
        assert task["status"] in KNOWN_WORDS


def test_tls_without_the_front_is_refused() -> None:
    done = subprocess.run(
        [str(RELAY), "simulator", "--tls-cert", "x.pem"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--proxy-like" in done.stderr
