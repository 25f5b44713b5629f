"""`relay api` on a Redis Cluster URL: started as a real process, ready when the cluster answers."""

from __future__ import annotations

import httpx

from relay.devtools.redis_server import free_port
from support.processes import Proc, clean_env, wait_ready
from tests.conftest import API_KEYS


async def test_relay_api_on_a_cluster_url_is_ready(seed_url: str) -> None:
    port = free_port()
    api = Proc(
        "api", "--port", str(port), env=clean_env(RELAY_REDIS_URL=seed_url, RELAY_API_KEYS=API_KEYS)
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        await wait_ready(base_url, api)
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            response = await client.get("/readyz")
        assert response.status_code == 200, response.text
    finally:
        api.close()


async def test_relay_api_refuses_to_start_on_a_cluster_it_cannot_reach() -> None:
    url = f"redis+cluster://:cluster-pw-xyz@127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    api = Proc(
        "api",
        "--port",
        str(free_port()),
        env=clean_env(RELAY_REDIS_URL=url, RELAY_API_KEYS=API_KEYS),
    )
    try:
        assert await api.wait(30) == 1, api.output()
        said = api.output()
        assert "relay: cannot reach Redis at redis+cluster://:***@127.0.0.1:" in said, said
        assert "cluster-pw-xyz" not in said
        assert "Traceback" not in said
    finally:
        api.close()
