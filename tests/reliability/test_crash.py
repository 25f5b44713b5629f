"""Workers die: SIGKILL at random moments, SIGTERM mid-work. Nothing is lost or reordered.

Real processes: one `relay api` and two `relay worker` on the session's Redis,
a scripted upstream whose tasks finish after a few polls, and a slow receiver
(0.3 s per answer) so that kills land in the middle of webhook attempts.
With RELAY_UPSTREAM_TIMEOUT=1 and RELAY_DELIVERY_TIMEOUT=1 a dead worker's
claims come back after 4 s (polls) and 6 s (deliveries).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from relay.devtools.redis_server import RedisServer, free_port
from support.payloads import answer, finished, new_id
from support.processes import Proc, clean_env, wait_ready
from support.servers import Canned, Receiver, ScriptedUpstream
from support.waiting import eventually
from tests.conftest import WEBHOOK_SECRET, fast_env
from workers.worker import SHUTDOWN_GRACE

FINAL_TYPES = {"task.succeeded", "task.failed", "task.timed_out"}
ALL_EVENTS = ["task.progress", *sorted(FINAL_TYPES)]
KEYS = {"alpha": "key-alpha-0123456789", "beta": "key-beta-0123456789"}


@pytest.fixture
async def slow_receiver() -> Any:
    server = Receiver()
    server.delay = 0.3
    await server.start()
    yield server
    await server.stop()


def script_task(upstream: ScriptedUpstream, task_id: str, rng: random.Random) -> str:
    """A task that ends after a few polls (progress going up); returns its final type."""
    answers: list[dict[str, Any]] = [answer(task_id, "pending")] * rng.randint(0, 2)
    progress = sorted(rng.sample(range(1, 100), rng.randint(1, 4)))
    for value in progress:
        answers += [answer(task_id, "processing", percentage=str(value))] * rng.randint(1, 3)
    if rng.random() < 0.1:
        upstream.script(task_id, *answers, answer(task_id, "failed", error="boom"))
        return "task.failed"
    upstream.script(task_id, *answers, finished(task_id))
    return "task.succeeded"


class Cluster:
    """`relay api` and any number of `relay worker` processes on one environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api = Proc("api", "--port", str(self.port), env=env)
        self.workers: list[Proc] = []
        self.dead: list[Proc] = []

    async def start(self, workers: int) -> None:
        for _ in range(workers):
            self.workers.append(Proc("worker", env=self.env))
        await wait_ready(self.base_url, self.api)
        for worker in self.workers:
            await worker.wait_output("worker started")

    def add_worker(self) -> Proc:
        worker = Proc("worker", env=self.env)
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        parts = [f"--- api:\n{self.api.output()[-2000:]}"]
        for i, proc in enumerate(self.dead + self.workers):
            parts.append(f"--- worker {i} (pid {proc.pid}):\n{proc.output()[-2000:]}")
        return "\n".join(parts)

    def close(self) -> None:
        for proc in [self.api, *self.workers, *self.dead]:
            proc.close()


@pytest.fixture
async def cluster(redis_server: RedisServer, redis: Redis, upstream: ScriptedUpstream) -> Any:
    created = Cluster(clean_env(**fast_env(redis_server.url, upstream.url)))
    try:
        yield created
    finally:
        created.close()


async def register_all(
    client: httpx.AsyncClient,
    url: str,
    registrations: list[tuple[str, str, bool]],
    waves: int,
    pause: float,
) -> None:
    """Register (task, tenant, with progress) in waves, `pause` seconds apart."""

    def body(task_id: str, tenant: str, progress: bool) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "task_id": task_id,
            "webhook_url": url,
            "metadata": {"tenant": tenant},
        }
        if progress:
            fields["events"] = ALL_EVENTS
        return fields

    size = -(-len(registrations) // waves)
    for start in range(0, len(registrations), size):
        wave = registrations[start : start + size]
        replies = await asyncio.gather(
            *(
                client.post(
                    "/v1/tasks",
                    json=body(task_id, tenant, progress),
                    headers={"authorization": f"Bearer {KEYS[tenant]}"},
                )
                for task_id, tenant, progress in wave
            )
        )
        for reply in replies:
            assert reply.status_code == 201, reply.text
        await asyncio.sleep(pause)


def plan(
    upstream: ScriptedUpstream, count: int, rng: random.Random
) -> tuple[list[tuple[str, str, bool]], dict[str, str]]:
    """`count` tasks, a third with progress events, one in ten also registered by beta."""
    registrations: list[tuple[str, str, bool]] = []
    final_type: dict[str, str] = {}
    for i in range(count):
        task_id = new_id()
        final_type[task_id] = script_task(upstream, task_id, rng)
        progress = i % 3 == 0
        registrations.append((task_id, "alpha", progress))
        if i % 10 == 0:
            registrations.append((task_id, "beta", not progress))
    rng.shuffle(registrations)
    return registrations, final_type


def check_received(
    receiver: Receiver, registrations: list[tuple[str, str, bool]], final_type: dict[str, str]
) -> dict[str, int]:
    """The invariants over everything the receiver got, in arrival order."""
    hook = Webhook(WEBHOOK_SECRET)
    by_id: dict[str, list[bytes]] = defaultdict(list)
    per_sub: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for received in receiver.received:
        event = hook.verify(received.body, received.headers)  # raises if not signed right
        webhook_id = received.headers["webhook-id"]
        by_id[webhook_id].append(received.body)
        data = event["data"]
        per_sub[(data["task_id"], data["metadata"]["tenant"])].append((webhook_id, event))

    for webhook_id, bodies in by_id.items():
        assert len(set(bodies)) == 1, f"attempts of {webhook_id} carried different bodies"
    ids_by_body: dict[bytes, set[str]] = defaultdict(set)
    for received in receiver.received:
        ids_by_body[received.body].add(received.headers["webhook-id"])
    for body, ids in ids_by_body.items():
        assert len(ids) == 1, f"one event went out under several webhook-ids {ids}: {body!r}"

    duplicates = sum(len(bodies) - 1 for bodies in by_id.values())
    owner: dict[str, tuple[str, str, str]] = {}
    for task_id, tenant, _progress in registrations:
        arrived = per_sub.get((task_id, tenant), [])
        types = [event["type"] for _, event in arrived]
        assert final_type[task_id] in types, (
            f"{tenant}'s final event of {task_id} never arrived; got {types}"
        )
        first_final = next(i for i, t in enumerate(types) if t in FINAL_TYPES)
        final_id = arrived[first_final][0]
        after = [(wid, t) for (wid, _), t in zip(arrived, types, strict=True)][first_final + 1 :]
        assert all(wid == final_id for wid, _ in after), (
            f"{tenant} got events of {task_id} after its final one: {types}"
        )
        progress = [e["data"]["progress"] for _, e in arrived if e["type"] == "task.progress"]
        assert progress == sorted(progress), (
            f"{tenant}'s progress events of {task_id} arrived out of order: {progress}"
        )
        # One webhook-id is one event of one subscriber.
        for wid, event in arrived:
            seen = owner.setdefault(wid, (task_id, tenant, event["type"]))
            assert seen == (task_id, tenant, event["type"]), (wid, seen)
    return {"received": len(receiver.received), "events": len(by_id), "duplicates": duplicates}


async def all_delivered(
    client: httpx.AsyncClient, registrations: list[tuple[str, str, bool]]
) -> list[str]:
    """Registrations whose task is not final yet or has a delivery not delivered."""
    open_ones: list[str] = []
    sem = asyncio.Semaphore(20)

    async def one(task_id: str, tenant: str) -> None:
        headers = {"authorization": f"Bearer {KEYS[tenant]}"}
        async with sem:
            task = (await client.get(f"/v1/tasks/{task_id}", headers=headers)).json()
            listing = (await client.get(f"/v1/tasks/{task_id}/deliveries", headers=headers)).json()
        statuses = [d["status"] for d in listing["deliveries"]]
        if task["status"] not in {"succeeded", "failed", "timed_out"} or any(
            s != "delivered" for s in statuses
        ):
            open_ones.append(f"{tenant}/{task_id}: {task['status']} {statuses}")

    await asyncio.gather(*(one(task_id, tenant) for task_id, tenant, _ in registrations))
    return open_ones


async def wait_all_done(
    client: httpx.AsyncClient,
    receiver: Receiver,
    registrations: list[tuple[str, str, bool]],
    final_type: dict[str, str],
    cluster: Cluster,
    timeout: float,
) -> None:
    wanted = {(task_id, tenant) for task_id, tenant, _ in registrations}

    async def finals_arrived() -> bool:
        got = {
            (e["data"]["task_id"], e["data"]["metadata"]["tenant"])
            for e in receiver.events()
            if e["type"] == final_type[e["data"]["task_id"]]
        }
        return wanted <= got

    deadline = time.monotonic() + timeout
    try:
        await eventually(finals_arrived, timeout, "every final event reached the receiver", 0.2)
        remaining: list[str] = []

        async def delivered() -> bool:
            remaining[:] = await all_delivered(client, registrations)
            return not remaining

        await eventually(
            delivered, max(5.0, deadline - time.monotonic()), "every delivery delivered", 0.5
        )
    except AssertionError as exc:
        missing = len(wanted) - len(
            {(e["data"]["task_id"], e["data"]["metadata"]["tenant"]) for e in receiver.events()}
        )
        open_ones = await all_delivered(client, registrations)
        raise AssertionError(
            f"{exc}; {missing} subscriptions without any webhook; open: {open_ones[:10]}\n"
            f"{cluster.logs()}"
        ) from None


async def test_sigkilled_workers_lose_nothing_and_break_no_order(
    cluster: Cluster, upstream: ScriptedUpstream, slow_receiver: Receiver
) -> None:
    rng = random.Random()
    registrations, final_type = plan(upstream, 200, rng)
    await cluster.start(workers=2)

    async with httpx.AsyncClient(base_url=cluster.base_url, timeout=10) as client:
        registering = asyncio.create_task(
            register_all(client, slow_receiver.url + "/hook", registrations, 8, 0.8)
        )

        kills: list[tuple[float, int, int]] = []  # (when, pid, attempts received so far)
        started = time.monotonic()
        for _ in range(3):
            await asyncio.sleep(rng.uniform(1.0, 2.5))
            victim = rng.choice(cluster.workers)
            victim.sigkill()
            kills.append((time.monotonic() - started, victim.pid, len(slow_receiver.received)))
            cluster.workers.remove(victim)
            cluster.dead.append(victim)
            cluster.add_worker()
        await registering

        await wait_all_done(client, slow_receiver, registrations, final_type, cluster, 45)
        await asyncio.sleep(0.5)  # anything that would wrongly follow a final event
        stats = check_received(slow_receiver, registrations, final_type)

    assert all(proc.process.returncode == -9 for proc in cluster.dead)
    assert all(proc.alive() for proc in cluster.workers), cluster.logs()
    print(f"kills (s, pid, received): {kills}; {stats}")


async def test_sigterm_mid_work_exits_0_within_the_grace_and_loses_nothing(
    cluster: Cluster, upstream: ScriptedUpstream, slow_receiver: Receiver
) -> None:
    rng = random.Random()
    registrations, final_type = plan(upstream, 80, rng)
    await cluster.start(workers=2)
    async with httpx.AsyncClient(base_url=cluster.base_url, timeout=10) as client:
        registering = asyncio.create_task(
            register_all(client, slow_receiver.url + "/hook", registrations, 4, 0.5)
        )
        await asyncio.sleep(1.5)
        victim = cluster.workers[0]
        stopped_at = time.monotonic()
        victim.sigterm()
        code = await victim.wait(SHUTDOWN_GRACE)
        took = time.monotonic() - stopped_at
        cluster.workers.remove(victim)
        cluster.dead.append(victim)
        assert code == 0, f"relay worker exited {code} after SIGTERM:\n{victim.output()[-3000:]}"
        assert "Traceback" not in victim.output(), victim.output()[-3000:]
        worked = ("webhook attempt", "task event")
        assert any(line in victim.output() for line in worked), "the stopped worker did no work"
        await registering

        await wait_all_done(client, slow_receiver, registrations, final_type, cluster, 40)
        await asyncio.sleep(0.5)
        stats = check_received(slow_receiver, registrations, final_type)
    print(f"SIGTERM exit after {took:.2f} s; {stats}")


async def test_sigterm_writes_the_outcome_of_webhook_attempts_in_flight(
    cluster: Cluster, upstream: ScriptedUpstream
) -> None:
    """README: on SIGTERM the worker "lets in-flight calls finish and writes their outcomes"."""
    receiver = Receiver()
    receiver.delay = 0.6  # within RELAY_DELIVERY_TIMEOUT=1: every attempt can finish
    await receiver.start()
    try:
        task_ids = [new_id() for _ in range(5)]
        for task_id in task_ids:
            upstream.script(task_id, finished(task_id))
        await cluster.start(workers=1)
        (worker,) = cluster.workers
        async with httpx.AsyncClient(
            base_url=cluster.base_url,
            headers={"authorization": "Bearer key-alpha-0123456789"},
            timeout=10,
        ) as client:
            for task_id in task_ids:
                reply = await client.post(
                    "/v1/tasks", json={"task_id": task_id, "webhook_url": receiver.url}
                )
                assert reply.status_code == 201, reply.text
            await receiver.wait_for(len(task_ids), timeout=10)
            worker.sigterm()  # every attempt is in flight: the receiver holds each 0.6 s
            code = await worker.wait(SHUTDOWN_GRACE)
            assert code == 0, f"exit {code}:\n{worker.output()[-3000:]}"
            listings = [
                (await client.get(f"/v1/tasks/{task_id}/deliveries")).json()["deliveries"]
                for task_id in task_ids
            ]
        # No worker runs any more: what the listing shows is what the stopped one wrote.
        shown = [[(d["status"], len(d["attempts"])) for d in listing] for listing in listings]
        assert shown == [[("delivered", 1)]] * len(task_ids), (
            f"attempts the stopped worker finished were not written: {shown}\n{worker.output()}"
        )
    finally:
        await receiver.stop()


async def test_sigterm_writes_the_outcome_of_polls_in_flight(
    cluster: Cluster, upstream: ScriptedUpstream
) -> None:
    """README: on SIGTERM the worker "lets in-flight calls finish and writes their outcomes"."""
    task_ids = [new_id() for _ in range(5)]
    for task_id in task_ids:
        # within RELAY_UPSTREAM_TIMEOUT=1: every fetch can finish
        upstream.script(task_id, Canned(finished(task_id), delay=0.6))
    await cluster.start(workers=1)
    (worker,) = cluster.workers
    async with httpx.AsyncClient(
        base_url=cluster.base_url,
        headers={"authorization": "Bearer key-alpha-0123456789"},
        timeout=10,
    ) as client:
        for task_id in task_ids:
            reply = await client.post("/v1/tasks", json={"task_id": task_id, "events": []})
            assert reply.status_code == 201, reply.text

        async def all_fetching() -> bool:
            return all(upstream.calls[task_id] for task_id in task_ids)

        await eventually(all_fetching, 10, "every task's first fetch started", 0.01)
        worker.sigterm()  # every fetch is in flight: the upstream holds each 0.6 s
        code = await worker.wait(SHUTDOWN_GRACE)
        assert code == 0, f"exit {code}:\n{worker.output()[-3000:]}"
        tasks = [(await client.get(f"/v1/tasks/{task_id}")).json() for task_id in task_ids]
    shown = [(t["status"], t["polls"]) for t in tasks]
    assert shown == [("succeeded", 1)] * len(task_ids), (
        f"fetches the stopped worker finished were not written: {shown}\n{worker.output()[-3000:]}"
    )
