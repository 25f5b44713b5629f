"""The client installs and works without the server's dependencies: its core, and its
receiver kit short of the endpoint (Starlette) and the Redis store, import and run in a
Python where those cannot be imported at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import relay_client

import relay.client

BLOCKED = ("starlette", "aiohttp", "redis", "msgspec", "uvicorn", "relay", "workers")

PROGRAM = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not installed here")
            return None

    sys.meta_path.insert(0, Refuse())
    from relay_client import RelayClient, AsyncRelayClient, NotFound, RetryPolicy
    from relay_client.receiver import Verifier, MemoryDeduplicator, sign, TaskSucceeded

    secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="
    body = json.dumps({"type": "task.succeeded", "timestamp": "2026-11-29T10:00:06Z",
        "data": {"task_id": "t", "status": "succeeded", "registered_at": "2026-11-29T10:00:00Z",
                 "updated_at": "2026-11-29T10:00:06Z"}}).encode()
    event = Verifier(secret).receive(body, sign(secret, body))
    assert isinstance(event, TaskSucceeded), event
    RelayClient("http://127.0.0.1:1", "k").close()
    try:
        import relay_client.receiver.endpoint
    except ImportError as exc:
        print("endpoint needs:", exc)
    print("ok")
    """
)


def test_the_client_needs_none_of_the_servers_dependencies() -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"BLOCKED = {BLOCKED!r}\n{PROGRAM}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["endpoint needs: starlette is not installed here", "ok"]


def test_the_server_offers_the_same_client_as_relay_client() -> None:
    assert relay.client.RelayClient is relay_client.RelayClient
    assert set(relay.client.__all__) == set(relay_client.__all__)
    assert {"RelayClient", "AsyncRelayClient", "Conflict", "NotFound"} <= set(relay.client.__all__)
