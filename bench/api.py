"""Registration API: `relay api` against a bare Starlette endpoint, same uvicorn, same load.

    .venv/bin/python -m bench.api [--tiny]

The real `relay api` (one uvicorn process, uvloop and httptools, on its own
Redis) and the bare app (bench/_bare_api.py: one JSON endpoint, no Redis,
same uvicorn settings) are each loaded with 64 keep-alive connections for
~10 s after a warm-up; every request is `POST /v1/tasks` registering a new
UUID task with a webhook URL and a little metadata. The load comes from `wrk`
when it is on PATH, else from bench/_loadgen.py (aiohttp, closed loop) in two
processes of 32 connections each. Reported: requests/s, p50/p99 latency, and
the server's CPU per request.

`RELAY_ALLOW_PRIVATE_WEBHOOKS=1` keeps the webhook URL check off the network
(no DNS here): in production each registration with a host name resolves it.
`RELAY_TENANT_MAX_TASKS` is lifted: the run registers far more than the default
quota for one tenant, and every answer must be a 201.

Targets: >= 0.4x bare requests/s; p99 < 20 ms at 64 connections.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request

from bench._common import (
    HOST,
    Result,
    Stack,
    cpu_seconds,
    print_results,
    print_table,
    ratio_note,
    say,
    standard_args,
    target_note,
    worker_env,
)
from relay.devtools.redis_server import free_port
from support.stats import percentile

FULL = {"warmup": 2.0, "duration": 10.0}
TINY = {"warmup": 0.5, "duration": 1.5}
CONNECTIONS = 64
PROCESSES = 2
CLIENT_KEY = "bench-client-key"

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer %s"
local n = 0
local function hex(k)
  local s = ""
  for i = 1, k do s = s .. string.format("%%x", math.random(0, 15)) end
  return s
end
request = function()
  n = n + 1
  local id = hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-a" .. hex(3) .. "-" .. hex(12)
  local body = '{"task_id":"' .. id
    .. '","webhook_url":"https://hooks.example.com/relay/webhooks","metadata":{"order":'
    .. n .. '}}'
  return wrk.format(nil, nil, nil, body)
end
"""


def wait_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy")


def load(
    stack: Stack, url: str, server_pid: int, warmup: float, duration: float
) -> dict[str, float]:
    """Requests/s, latency percentiles (ms) and server CPU per request for one server."""
    wrk = shutil.which("wrk")
    if wrk:
        script = f"{stack.dir}/register.lua"
        with open(script, "w") as handle:
            handle.write(WRK_SCRIPT % CLIENT_KEY)
        subprocess.run(
            [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{warmup:g}s", "-s", script, url + "/v1/tasks"],
            check=True,
            capture_output=True,
            timeout=warmup + 30,
        )
        c0 = cpu_seconds(server_pid)
        out = subprocess.run(
            [
                wrk,
                "-t2",
                f"-c{CONNECTIONS}",
                f"-d{duration:g}s",
                "--latency",
                "-s",
                script,
                url + "/v1/tasks",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=duration + 30,
        ).stdout
        c1 = cpu_seconds(server_pid)
        return _parse_wrk(out, duration, c1 - c0)
    generators = [
        stack.spawn(
            f"loadgen{i}",
            [
                "-m",
                "bench._loadgen",
                "--url",
                url + "/v1/tasks",
                "--connections",
                str(CONNECTIONS // PROCESSES),
                "--warmup",
                str(warmup),
                "--duration",
                str(duration),
                "--key",
                CLIENT_KEY,
                "--out",
                f"{stack.dir}/loadgen{i}.json",
            ],
        )
        for i in range(PROCESSES)
    ]
    time.sleep(warmup)
    c0 = cpu_seconds(server_pid)
    time.sleep(duration)
    c1 = cpu_seconds(server_pid)
    latencies: list[float] = []
    count = errors = 0
    codes: dict[str, int] = {}
    for i, generator in enumerate(generators):
        generator.popen.wait(30)
        with open(f"{stack.dir}/loadgen{i}.json") as handle:
            result = json.load(handle)
        latencies.extend(result["latencies_ms"])
        count += result["count"]
        errors += result["errors"]
        for code, n in result["codes"].items():
            codes[code] = codes.get(code, 0) + n
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    return {
        "rps": count / duration,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "cpu_us": (c1 - c0) * 1e6 / count if count else float("nan"),
        "non_2xx": count - ok + errors,
    }


def _parse_wrk(out: str, duration: float, cpu: float) -> dict[str, float]:
    def ms(text: str) -> float:
        for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if text.endswith(unit):
                return float(text[: -len(unit)]) * factor
        return float(text)

    values: dict[str, float] = {"non_2xx": 0.0}
    for line in out.splitlines():
        parts = line.split()
        if line.strip().startswith("50%"):
            values["p50"] = ms(parts[1])
        elif line.strip().startswith("99%"):
            values["p99"] = ms(parts[1])
        elif line.startswith("Requests/sec:"):
            values["rps"] = float(parts[1])
        elif "Non-2xx" in line:
            values["non_2xx"] = float(parts[-1])
    values["max"] = float("nan")
    values["cpu_us"] = cpu * 1e6 / (values["rps"] * duration) if values.get("rps") else float("nan")
    return values


def main(argv: list[str] | None = None) -> int:
    args = standard_args(__doc__).parse_args(argv)
    cfg = TINY if args.tiny else FULL
    warmup, duration = cfg["warmup"], cfg["duration"]
    generator = (
        "wrk"
        if shutil.which("wrk")
        else f"bench._loadgen ({PROCESSES} processes x {CONNECTIONS // PROCESSES} connections)"
    )
    figures: dict[str, dict[str, float]] = {}
    with Stack() as stack:
        redis = stack.redis()
        for name, argv_ in (
            ("relay api", ["-m", "relay", "api", "--host", HOST]),
            ("bare starlette", ["-m", "bench._bare_api"]),
        ):
            port = free_port()
            say(f"{name} under load ({generator})")
            server = stack.spawn(
                name.replace(" ", "-"),
                [*argv_, "--port", str(port)],
                # Every request registers a new task of one tenant: no quota here, or
                # past RELAY_TENANT_MAX_TASKS the run would measure 429s.
                worker_env(redis.url, "http://127.0.0.1:9", RELAY_TENANT_MAX_TASKS="1000000000"),
                ready=None,
            )
            url = f"http://{HOST}:{port}"
            try:
                wait_healthy(url)
                figures[name] = load(stack, url, server.pid, warmup, duration)
            finally:
                server.stop()

    relay, bare = figures["relay api"], figures["bare starlette"]
    print_table(
        f"Registration API: POST /v1/tasks, {CONNECTIONS} connections, load from {generator}",
        [
            "server",
            "requests/s",
            "x bare",
            "p50 ms",
            "p99 ms",
            "max ms",
            "server us/request",
            "non-2xx",
        ],
        [
            [
                name,
                f["rps"],
                f"{f['rps'] / bare['rps']:.2f}",
                f["p50"],
                f["p99"],
                f["max"],
                f["cpu_us"],
                int(f["non_2xx"]),
            ]
            for name, f in figures.items()
        ],
    )
    print_results(
        [
            Result(
                "api_requests_per_s",
                relay["rps"],
                "requests/s",
                ratio_note(relay["rps"], bare["rps"])
                + "; "
                + target_note(relay["rps"] / bare["rps"] >= 0.4, ">= 0.4x bare"),
            ),
            Result("api_p50_latency", relay["p50"], "ms", ratio_note(relay["p50"], bare["p50"])),
            Result(
                "api_p99_latency",
                relay["p99"],
                "ms",
                ratio_note(relay["p99"], bare["p99"])
                + "; "
                + target_note(relay["p99"] < 20, "< 20 ms"),
            ),
            Result(
                "api_server_cpu_per_request",
                relay["cpu_us"],
                "us/request",
                ratio_note(relay["cpu_us"], bare["cpu_us"]),
            ),
            Result("api_bare_requests_per_s", bare["rps"], "requests/s", "1.00x bare"),
        ]
    )
    if relay["non_2xx"]:
        print(f"warning: {int(relay['non_2xx'])} relay requests were not 2xx")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
