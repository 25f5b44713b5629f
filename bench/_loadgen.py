"""A closed-loop HTTP load generator for the API bench (used when `wrk` is not on PATH).

    python -m bench._loadgen --url URL --connections C --warmup W --duration D --out F [--key K]

One process, C keep-alive connections (aiohttp, uvloop), each sending
`POST /v1/tasks` with a new UUID task in a loop, answer read before the next.
Requests that start within [W, W + D) seconds of the start are measured.
Prints `READY`; at the end writes `--out` (JSON): count, errors, status
codes, and every measured latency in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from support.payloads import new_id


async def run(
    url: str, connections: int, warmup: float, duration: float, key: str
) -> dict[str, object]:
    start = time.perf_counter()
    begin, end = start + warmup, start + warmup + duration
    latencies: list[float] = []
    codes: dict[int, int] = {}
    errors = 0
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(n: int) -> None:
            nonlocal errors
            i = 0
            while True:
                sent = time.perf_counter()
                if sent >= end:
                    return
                i += 1
                body = json.dumps(
                    {
                        "task_id": new_id(),
                        "webhook_url": "https://hooks.example.com/relay/webhooks",
                        "metadata": {"order": n * 1_000_000 + i},
                    }
                ).encode()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError:
                    errors += 1
                    await asyncio.sleep(0.01)
                    continue
                if sent >= begin:
                    latencies.append((time.perf_counter() - sent) * 1000)
                    codes[status] = codes.get(status, 0) + 1

        print("READY", flush=True)
        await asyncio.gather(*(one(n) for n in range(connections)))
    return {"count": len(latencies), "errors": errors, "codes": codes, "latencies_ms": latencies}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._loadgen")
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--key", default="")
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    args = parser.parse_args()
    if not args.url.startswith("http://127.0.0.1"):
        raise SystemExit("the load generator only loads loopback servers")
    import uvloop

    result = uvloop.run(run(args.url, args.connections, args.warmup, args.duration, args.key))
    with open(args.out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
