"""`relay dev`: the whole relay on one machine, in one command, shown live.

It starts a private Redis (unless RELAY_REDIS_URL is set), generates a client
key and a webhook secret when none are set, and runs `relay api` and
`relay worker` as child processes. With `--simulate` it also runs the
simulator as the upstream, registers one demo task per result shape, and
prints each task's progress and each webhook as it arrives, its signature
checked, until Ctrl-C.

Ctrl-C, SIGTERM and SIGHUP all stop every child and then the private Redis;
killed outright (SIGKILL), it leaves none behind either: each child ends with
its parent (see `relay.devtools.lifeline`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
from aiohttp import web

from relay.core import signing
from relay.devtools import lifeline
from relay.devtools.redis_server import RedisNotFound, RedisServer, find_redis_server, free_port
from relay.settings import REQUIRED_BY, load_settings

DEMO_TASKS: tuple[dict[str, Any], ...] = (
    {"shape": "sync", "task_type": "imagine", "model": "flux-pro"},
    {"shape": "grid", "queue_seconds": 3, "duration_seconds": 20},
    {"shape": "single", "task_type": "upscale#1", "queue_seconds": 1, "duration_seconds": 12},
    {"shape": "video", "queue_seconds": 2, "duration_seconds": 30},
    {"shape": "describe", "queue_seconds": 1, "duration_seconds": 8},
    {"shape": "seed", "queue_seconds": 0, "duration_seconds": 5},
    {"shape": "failed", "queue_seconds": 2, "duration_seconds": 10},
    {"shape": "retried", "queue_seconds": 1, "duration_seconds": 10, "retry_seconds": 3},
)


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {line}", flush=True)


class _Stop(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds `relay dev` into its cleanup exactly as Ctrl-C does."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CHILD_GRACE = 25.0  # the API's own graceful shutdown takes up to 20 s


def run(*, port: int, simulate: bool) -> int:
    # Set here, not inherited: a shell starting relay dev in the background ignores SIGINT.
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop)
    env = dict(os.environ)
    children: list[subprocess.Popen[bytes]] = []
    redis: RedisServer | None = None
    try:
        if not env.get("RELAY_REDIS_URL"):
            find_redis_server()  # before anything starts: one line saying how to get one
            redis = RedisServer(die_with_parent=True)
            redis.start()
            env["RELAY_REDIS_URL"] = redis.url
            say(f"private Redis at {redis.url} (stopped on exit)")
        client_key = _ensure_client_key(env)
        _ensure_webhook_secret(env)
        env.setdefault("RELAY_LOG_LEVEL", "WARNING")
        if simulate:
            sim_port = free_port()
            children.append(_spawn(env, "simulator", "--port", str(sim_port)))
            env["RELAY_UPSTREAM_URL"] = f"http://127.0.0.1:{sim_port}"
            env.setdefault("RELAY_UPSTREAM_API_KEY", "dev-upstream-key")
            env.setdefault("RELAY_ALLOW_PRIVATE_WEBHOOKS", "1")
            env.setdefault("RELAY_POLL_MIN_INTERVAL", "1")
            env.setdefault("RELAY_POLL_MAX_INTERVAL", "10")
            env.setdefault("RELAY_FAILED_GRACE", "5")
            env.setdefault("RELAY_UPSTREAM_WEBHOOK_SECRET", "dev-upstream-hook-secret")
        load_settings(env, require=REQUIRED_BY["api"] + REQUIRED_BY["worker"])
        children.append(_spawn(env, "api", "--port", str(port)))
        children.append(_spawn(env, "worker"))
        api_url = f"http://127.0.0.1:{port}"
        say(f"API at {api_url}  (Authorization: Bearer {client_key})")
        if simulate:
            asyncio.run(_demo(api_url, client_key, env, children))
        else:
            say("Ctrl-C stops everything")
            _wait(children)
        return 0
    except RedisNotFound as exc:
        print(f"relay dev: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # A second signal must not cut the cleanup short: every child is bounded by its grace.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        lifeline.stop_all(children, grace=CHILD_GRACE)
        if redis is not None:
            redis.cleanup()
        if children or redis is not None:
            say("stopped")


def _ensure_client_key(env: dict[str, str]) -> str:
    if env.get("RELAY_API_KEYS"):
        # The settings' own parser: a bare key may hold `=` (base64 padding).
        return load_settings({"RELAY_API_KEYS": env["RELAY_API_KEYS"]}).api_keys[0].key
    key = "dev_" + secrets.token_urlsafe(18)
    env["RELAY_API_KEYS"] = f"dev={key}"
    say(f"generated RELAY_API_KEYS=dev={key}")
    return key


def _ensure_webhook_secret(env: dict[str, str]) -> None:
    if not env.get("RELAY_WEBHOOK_SECRET"):
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        env["RELAY_WEBHOOK_SECRET"] = secret
        say(f"generated RELAY_WEBHOOK_SECRET={secret}")


def _spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return lifeline.spawn([sys.executable, "-m", "relay", *args], env=env)


def _wait(children: list[subprocess.Popen[bytes]]) -> None:
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    failed = [c for c in children if c.returncode]
    if failed:
        raise SystemExit(f"relay dev: a child process exited with status {failed[0].returncode}")


async def _demo(
    api_url: str, key: str, env: dict[str, str], children: list[subprocess.Popen[bytes]]
) -> None:
    secrets_ = load_settings(env).webhook_secrets
    hook_port = free_port()
    runner = await _start_receiver(hook_port, secrets_)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as api:
        await _wait_ready(api, children)
        async with httpx.AsyncClient(base_url=env["RELAY_UPSTREAM_URL"], timeout=10) as sim:
            task_ids = []
            for spec in DEMO_TASKS:
                created = (await sim.post("/sim/tasks", json=spec)).json()
                task_ids.append(created["task_id"])
                await api.post(
                    "/v1/tasks",
                    json={
                        "task_id": created["task_id"],
                        "webhook_url": f"http://127.0.0.1:{hook_port}/webhooks",
                        "events": [
                            "task.progress",
                            "task.succeeded",
                            "task.failed",
                            "task.timed_out",
                        ],
                        "metadata": {"demo": spec["shape"]},
                    },
                )
                say(f"registered {created['task_id'][:8]}  ({spec['shape']})")
        say("watching; webhooks are checked against RELAY_WEBHOOK_SECRET. Ctrl-C stops.")
        seen: dict[str, tuple[Any, ...]] = {}
        while all(child.poll() is None for child in children):
            for task_id in task_ids:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    task = (await api.get(f"/v1/tasks/{task_id}")).json()
                    view = (task["status"], task["upstream_status"], task["progress"])
                    if seen.get(task_id) != view:
                        seen[task_id] = view
                        progress = "" if task["progress"] is None else f" {task['progress']}%"
                        say(
                            f"task    {task_id[:8]}  {task['metadata'].get('demo', ''):<8} "
                            f"{task['status']:<9} (upstream: {task['upstream_status']}){progress}"
                        )
            await asyncio.sleep(0.5)
    await runner.cleanup()


async def _wait_ready(api: httpx.AsyncClient, children: list[subprocess.Popen[bytes]]) -> None:
    for _ in range(200):
        if any(child.poll() is not None for child in children):
            raise SystemExit("relay dev: a child process failed to start (see above)")
        with contextlib.suppress(httpx.HTTPError):
            if (await api.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("relay dev: the API did not become ready")


async def _start_receiver(port: int, secrets_: tuple[bytes, ...]) -> web.AppRunner:
    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        webhook_id = request.headers.get("webhook-id", "")
        timestamp = int(request.headers.get("webhook-timestamp", "0"))
        expected = set(signing.sign(secrets_, webhook_id, timestamp, body).split())
        given = set(request.headers.get("webhook-signature", "").split())
        check = "signature ok" if expected & given else "SIGNATURE MISMATCH"
        payload = json.loads(body)
        data = payload["data"]
        progress = "" if data["progress"] is None else f" {data['progress']}%"
        detail = ""
        if payload["type"] == "task.succeeded":
            result = data["result"]
            parts = [f"{k}={len(v)}" for k, v in result.items() if isinstance(v, list) and v]
            parts += [f"{k}={v}" for k, v in result.items() if isinstance(v, str)]
            detail = "  " + " ".join(parts)
        elif data["error"]:
            detail = f"  error: {data['error']}"
        say(
            f"webhook {data['task_id'][:8]}  {payload['type']:<15} {data['status']}{progress}"
            f"  [{webhook_id[:12]}…, {check}]{detail}"
        )
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner
