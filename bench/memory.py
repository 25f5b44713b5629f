"""Memory: Redis bytes per tracked task, and per finished and delivered task.

    .venv/bin/python -m bench.memory [--tiny]

On a Redis of its own, `INFO memory` used_memory is read before and after:
1. registering N tasks (the store's `Registry.register`, as the API does) with a
   webhook URL of realistic length, the default events and small metadata;
2. one `processing 45%` answer for each (through `PollQueue.apply`): the
   state every tracked task carries while the relay polls it;
3. one `finished` answer for each (a four-image grid), then every
   `task.succeeded` webhook delivered by a worker (bench/_poll_worker.py) to
   a local receiver: what each task leaves for RELAY_RETENTION (7 days).
Bytes per task = the used_memory difference from the baseline / N, each read
once the set-up's own connections are closed (their buffers are not the
tasks'). A few tasks are registered before the baseline so the script cache
is not counted. `MEMORY USAGE` of one sample task's record (its one key, and the
bytes of each kind of field in it) is shown per stage, and the keys every task
has an entry in: each of the `keys.SHARDS` shards' queues (their sum), the
tenant's listing and quota. Redis runs with its default settings.

Targets (issue 12), at 100,000 tasks: at most 512 B per tracked task and
1.5 KiB per finished task.
"""

from __future__ import annotations

import re
import time
from typing import Any

from redis.asyncio import Redis

from bench._common import (
    TENANT,
    Result,
    Stack,
    apply_answers,
    connected,
    deliveries_due,
    http_json,
    print_results,
    print_table,
    register_tasks,
    run_async,
    say,
    standard_args,
    target_note,
    worker_env,
)
from relay.store import keys
from relay.store.record import TaskRecord
from support.payloads import finished_grid, new_ids, processing
from support.waiting import eventually

FULL = {"tasks": 100_000}
TINY = {"tasks": 500}
METADATA = {"order": 123456, "customer": "cus_0123456789"}
# Redis' own default, said explicitly (the store does not depend on it: a task's
# record is one string).
DEFAULT = ("--hash-max-ziplist-value", "64")
TRACKED_TARGET = 512  # bytes, issue 12
FINISHED_TARGET = 1536
SHARD_TAG = re.compile(r"\{s[0-9]+\}")


async def used_memory(client: Redis) -> int:
    """used_memory once the set-up's connections are closed: each holds some 20 KiB of
    buffers, and how many a concurrent registration opens varies from run to run."""
    await client.connection_pool.disconnect()

    async def alone() -> bool:
        return int((await client.info("clients"))["connected_clients"]) == 1

    await eventually(alone, 10.0, "the set-up's other connections to Redis closed")
    info = await client.info("memory")
    return int(info["used_memory"])


def pattern(name: str, **ids: str) -> str:
    """A key's name as a pattern: no prefix, `{s<k>}` for its shard, `{<kind>}` for each id."""
    shown = SHARD_TAG.sub("{s<k>}", name.removeprefix(keys.PREFIX))
    for kind, value in ids.items():
        shown = shown.replace(value, "{" + kind + "}")
    return shown


async def sample_keys(client: Redis, task_id: str) -> list[list[Any]]:
    """One task's record: its name pattern, type, encoding, MEMORY USAGE bytes, and the
    bytes of each kind of field in it."""
    name = keys.task(task_id)
    raw = await client.get(name)
    if raw is None:
        return []
    record = TaskRecord(task_id, raw)
    kinds: dict[str, int] = {}
    for field, value in record.fields.items():
        kind = field.partition(":")[0] + (":" if ":" in field else "")
        kinds[kind] = kinds.get(kind, 0) + len(field) + len(value) + 2
    parts = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return [
        [
            pattern(name, id=keys.compact_id(task_id)),
            await client.type(name),
            await client.object("encoding", name),
            int(await client.memory_usage(name, samples=0) or 0),
            "yes" if await client.pttl(name) > 0 else "no",
            f"{len(raw)} B: {parts}",
        ]
    ]


def shared_groups() -> list[list[str]]:
    """The keys every task has an entry in: the shards' queues, then the tenant's sets."""
    shards = range(keys.SHARDS)
    return [
        [bucket for shard in shards for bucket in keys.due_buckets(shard)],
        [keys.due_heads(shard) for shard in shards],
        [bucket for shard in shards for bucket in keys.fair_buckets(shard)],
        [keys.fair_masks(shard) for shard in shards],
        [keys.fair_counts(shard) for shard in shards],
        [keys.delivery_due(shard) for shard in shards],
        [keys.tenant_tasks(TENANT)],
        [keys.active_tasks(TENANT)],
    ]


async def shared_keys(client: Redis, n: int) -> list[list[Any]]:
    """Per shared key (summed over the shards for a shard's queue): bytes per task."""
    rows = []
    for group in shared_groups():
        present = [name for name in group if await client.exists(name)]
        if not present:
            continue
        usage = sum([int(await client.memory_usage(name, samples=0) or 0) for name in present])
        encodings = sorted({str(await client.object("encoding", name)) for name in present})
        where = f", {len(present)} keys" if len(group) > 1 else ""
        rows.append(
            [
                f"{pattern(group[0])}{where} (per task)",
                await client.type(present[0]),
                "/".join(encodings),
                round(usage / n),
                "-",
                "",
            ]
        )
    return rows


def measure(
    n: int, redis_args: tuple[str, ...]
) -> tuple[dict[str, int], dict[str, list[list[Any]]], str]:
    """used_memory at each stage, one sample task's keys per stage, and the Redis version."""
    stages: dict[str, int] = {}
    samples: dict[str, list[list[Any]]] = {}
    with Stack() as stack:
        redis = stack.redis(*redis_args)
        _receiver, r_url = stack.receiver()
        hook = r_url + "/relay/webhooks?token=abcdef0123456789"  # the length of a real one
        ids = new_ids(n)

        async def prepare() -> str:
            async with connected(redis.url) as client:
                warm = await register_tasks(
                    client, new_ids(10), webhook_url=hook, metadata=METADATA
                )
                await apply_answers(client, warm, lambda t: processing(t, "45"))
                version = (await client.info("server"))["redis_version"]
                stages["baseline"] = await used_memory(client)
                stored = await register_tasks(client, ids, webhook_url=hook, metadata=METADATA)
                stages["registered"] = await used_memory(client)
                samples["registered"] = await sample_keys(client, ids[0]) + await shared_keys(
                    client, n
                )
                stored = await apply_answers(client, stored, lambda t: processing(t, "45"))
                stages["tracked (after a poll)"] = await used_memory(client)
                samples["tracked (after a poll)"] = await sample_keys(
                    client, ids[0]
                ) + await shared_keys(client, n)
                await apply_answers(client, stored, finished_grid)
                return str(version)

        say(
            f"registering {n} tasks, polling each once (redis {' '.join(redis_args) or 'defaults'})"
        )
        version = run_async(prepare())
        say("delivering every final webhook")
        worker = stack.spawn(
            "worker", ["-m", "bench._poll_worker"], worker_env(redis.url, "http://127.0.0.1:9")
        )

        async def due() -> int:
            async with connected(redis.url) as client:
                return await deliveries_due(client)

        deadline = time.monotonic() + max(60.0, n / 200)
        while time.monotonic() < deadline and (
            run_async(due()) or http_json(r_url + "/stats")["count"] < n
        ):
            time.sleep(0.2)
        worker.stop()
        if run_async(due()):
            raise RuntimeError(f"deliveries still due:\n{worker.log_tail()}")

        async def finish() -> None:
            async with connected(redis.url) as client:
                stages["finished and delivered"] = await used_memory(client)
                samples["finished and delivered"] = await sample_keys(
                    client, ids[0]
                ) + await shared_keys(client, n)

        run_async(finish())
    return stages, samples, version


def main(argv: list[str] | None = None) -> int:
    args = standard_args(__doc__).parse_args(argv)
    n = int((TINY if args.tiny else FULL)["tasks"])
    stages, samples, version = measure(n, DEFAULT)
    per_task = {
        name: (value - stages["baseline"]) / n
        for name, value in stages.items()
        if name != "baseline"
    }
    print_table(
        f"Redis memory: {n:,} tasks (redis {version}, default settings), "
        "used_memory difference from the baseline",
        ["stage", "used_memory MiB", "bytes per task"],
        [
            [name, (stages[name] - stages["baseline"]) / 2**20, per]
            for name, per in per_task.items()
        ],
    )
    for stage, rows in samples.items():
        print_table(
            f"Keys of one task: {stage}",
            ["key", "type", "encoding", "MEMORY USAGE bytes", "expires", "record"],
            rows,
        )
    tracked = per_task["tracked (after a poll)"]
    finished = per_task["finished and delivered"]
    print_results(
        [
            Result("memory_per_registered_task", per_task["registered"], "bytes", ""),
            Result(
                "memory_per_tracked_task",
                tracked,
                "bytes",
                target_note(tracked <= TRACKED_TARGET, f"<= {TRACKED_TARGET} B"),
            ),
            Result(
                "memory_per_finished_task",
                finished,
                "bytes",
                "kept for RELAY_RETENTION; "
                + target_note(finished <= FINISHED_TARGET, f"<= {FINISHED_TARGET} B"),
            ),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
