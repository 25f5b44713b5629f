"""The bare limit: a plain aiohttp client hammering a stand-in server, nothing else.

    python -m bench._bare_client --url URL --kind fetch|webhook [--concurrency 200] [--duration S]

One process, `concurrency` coroutines sharing one keep-alive session whose
pool holds as many connections (as the worker's transport does), each
posting in a loop: a fetch body with the upstream's key (`fetch`) or a
webhook-sized signed body (`webhook`). The server counts what arrives.
Stops after `duration` seconds or on SIGTERM; prints `READY` at start.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import signal
import time

import aiohttp

from support.load_servers import API_KEY
from support.payloads import new_ids


def webhook_body(task_id: str) -> bytes:
    """About the size of a real `task.succeeded` webhook body with a four-image grid."""
    base = f"https://cdn.midjourney.com/{task_id[:12]}"
    return json.dumps(
        {
            "type": "task.succeeded",
            "timestamp": "2026-11-29T10:01:02.345Z",
            "data": {
                "task_id": task_id,
                "status": "succeeded",
                "upstream_status": "finished",
                "progress": 100,
                "task_type": "imagine",
                "model": "midjourney",
                "result": {
                    "images": [f"{base}/0_{i}.png" for i in range(4)],
                    "grid_image": f"{base}/grid_0.png",
                    "videos": [],
                    "content": [],
                    "seed": None,
                },
                "error": None,
                "webhook_url": "http://127.0.0.1/hooks/relay",
                "events": ["task.succeeded", "task.failed", "task.timed_out"],
                "metadata": {"order": 1234, "customer": "cus_0123456789"},
                "registered_at": "2026-11-29T10:00:00.000Z",
                "updated_at": "2026-11-29T10:01:02.345Z",
                "completed_at": "2026-11-29T10:01:02.345Z",
                "polls": 3,
            },
        }
    ).encode()


async def run(url: str, kind: str, concurrency: int, duration: float) -> dict[str, float]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    ids = new_ids(1000)
    sent = errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    secret = b"bench-webhook-secret-0123456789"

    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(n: int) -> None:
            nonlocal sent, errors
            i = n
            while not stop.is_set():
                task_id = ids[i % len(ids)]
                i += concurrency
                if kind == "fetch":
                    body = b'{"task_id":"%s"}' % task_id.encode()
                    headers = {"authorization": API_KEY, "content-type": "application/json"}
                else:
                    body = webhook_body(task_id)
                    ts = str(int(time.time()))
                    signed = hmac.new(secret, f"msg_{i}.{ts}.".encode() + body, hashlib.sha256)
                    headers = {
                        "content-type": "application/json",
                        "webhook-id": f"msg_{i}",
                        "webhook-timestamp": ts,
                        "webhook-signature": "v1," + base64.b64encode(signed.digest()).decode(),
                    }
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        sent += 1
                except aiohttp.ClientError:
                    errors += 1
                    await asyncio.sleep(0.01)

        workers = [asyncio.create_task(one(n)) for n in range(concurrency)]
        print("READY", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), duration)
        except TimeoutError:
            stop.set()
        await asyncio.wait(workers, timeout=5)
    return {"sent": sent, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._bare_client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--kind", choices=["fetch", "webhook"], required=True)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    if not args.url.startswith("http://127.0.0.1"):
        raise SystemExit("the bare client only loads loopback servers")
    import uvloop

    result = uvloop.run(run(args.url, args.kind, args.concurrency, args.duration))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
