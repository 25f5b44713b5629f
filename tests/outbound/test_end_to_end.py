"""The real relay (API + worker + Redis) against an upstream and receivers behind a proxy-like
front over real TLS: every framing of an answer read whole, faults counted, never a crash."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from relay.simulator.framing import Framing
from relay.simulator.front import Front
from support.payloads import GRID, new_id, processing
from support.servers import Canned, Fronting, Receiver, ScriptedUpstream
from tests.api.test_metrics import scrape
from tests.conftest import WEBHOOK_SECRET, Api
from tests.outbound import bomb_handler
from workers.worker import WorkerContext

# SSL_CERT_FILE first: the worker reads it when it builds its transports.
pytestmark = pytest.mark.usefixtures("trust_ca", "worker")

# A finished answer long enough to come in many pieces: the prompt is an unknown extra field.
FINISHED = {**GRID, "prompt": "a lighthouse at dusk, " * 30}

FRAMINGS: dict[str, Framing] = {
    "chunked, 64 B 10 ms apart": Framing("chunked", piece=64, gap=0.01),
    "Content-Length, two writes 50 ms apart": Framing("length", split=2, gap=0.05),
    "gzip": Framing("chunked", encoding="gzip", piece=64, gap=0.01),
    "deflate": Framing("length", encoding="deflate", split=2, gap=0.05),
    "br": Framing("length", encoding="br"),
    "Connection: close": Framing(close=True),
    "ended by closing the connection": Framing("eof"),
    "a slow trickle within the timeout": Framing(piece=64, gap=0.05),
}


@pytest.fixture
def manners() -> dict[str, Any]:
    """The upstream front's manners (see `Fronting`); `untrusted` for a certificate from no
    trusted CA. Parametrize to change them."""
    return {}


@pytest.fixture
async def upstream(
    tls: ssl.SSLContext, untrusted_tls: ssl.SSLContext, manners: dict[str, Any]
) -> AsyncIterator[ScriptedUpstream]:
    options = dict(manners)
    context = untrusted_tls if options.pop("untrusted", False) else tls
    server = ScriptedUpstream(fronting=Fronting(tls=context, **options))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def receiver(tls: ssl.SSLContext) -> AsyncIterator[Receiver]:
    server = Receiver(fronting=Fronting(tls=tls))
    await server.start()
    yield server
    await server.stop()


async def polls_counted(api: Api, outcome: str, at_least: int = 1, timeout: float = 8.0) -> float:
    """The cluster's relay_polls_total{outcome=...} once it reaches `at_least`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        counted = (await scrape(api)).labels_of("relay_polls_total", "outcome").get(outcome, 0)
        if counted >= at_least:
            return counted
        assert loop.time() < deadline, f"{outcome} counted {counted} times, not {at_least}"
        await asyncio.sleep(0.1)


async def succeeds(api: Api, receiver: Receiver, task_id: str) -> dict[str, Any]:
    """The finished task as the API shows it, once its signed webhook arrived over https."""
    assert receiver.url.startswith("https://")
    body = await api.wait_status(task_id, "succeeded")
    assert body["result"]["images"] == GRID["image_urls"]
    assert body["result"]["grid_image"] == GRID["original_image_url"]
    await receiver.wait_for(1, task_id=task_id)
    (received,) = [r for r in receiver.received if r.json["data"]["task_id"] == task_id]
    event = Webhook(WEBHOOK_SECRET).verify(received.body, received.headers)
    assert event["type"] == "task.succeeded"
    assert event["data"]["result"] == body["result"]
    return body


@pytest.mark.parametrize("framing", FRAMINGS.values(), ids=FRAMINGS.keys())
async def test_every_framing_of_a_finished_answer_ends_the_task_succeeded(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, framing: Framing
) -> None:
    assert upstream.url.startswith("https://")
    task_id = new_id()
    upstream.script(
        task_id,
        Canned(processing(task_id), framing=framing),
        Canned({"task_id": task_id, **FINISHED}, framing=framing),
    )
    await api.register(task_id, webhook_url=receiver.url)
    body = await succeeds(api, receiver, task_id)
    assert body["polls"] == 2, "no poll was lost to a misread answer"


@pytest.mark.parametrize(
    ("manners", "counter"),
    [({"idle_timeout": 0.03}, "idle_closes"), ({"drop_reused": True}, "dropped")],
    ids=["idle connections closed between polls", "stale connections found at reuse"],
)
async def test_kept_alive_connections_the_upstream_closes_cost_no_poll(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, counter: str
) -> None:
    task_id = new_id()
    upstream.script(
        task_id, processing(task_id), processing(task_id), {"task_id": task_id, **FINISHED}
    )
    await api.register(task_id, webhook_url=receiver.url)
    body = await succeeds(api, receiver, task_id)
    assert upstream.front is not None and getattr(upstream.front, counter) >= 1
    assert body["polls"] == 3, "a stale connection is retried at once on a new one"


@pytest.mark.parametrize(
    "framing",
    [Framing("chunked", piece=1 << 16), Framing(encoding="gzip")],
    ids=["chunked", "gzip, small on the wire"],
)
async def test_an_answer_over_the_read_limit_is_counted_too_large(
    api: Api,
    upstream: ScriptedUpstream,
    receiver: Receiver,
    framing: Framing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.worker")
    task_id = new_id()
    huge = {"task_id": task_id, **FINISHED, "prompt": "x" * (1 << 20)}  # the limit is 1 MiB
    upstream.script(task_id, Canned(huge, framing=framing))
    await api.register(task_id, webhook_url=receiver.url)
    await polls_counted(api, "too_large", at_least=2)
    body = (await api.task(task_id)).json()
    assert body["status"] == "queued" and body["result"]["images"] == [], body
    assert not receiver.received
    assert any("too_large" in r.getMessage() for r in caplog.records)


async def test_a_trickle_slower_than_the_timeout_is_a_timeout_fault(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver
) -> None:
    task_id = new_id()
    trickle = Framing(piece=8, gap=0.25)  # the whole answer would take over 10 s
    upstream.script(
        task_id,
        Canned({"task_id": task_id, **FINISHED}, framing=trickle),
        {"task_id": task_id, **FINISHED},
    )
    await api.register(task_id, webhook_url=receiver.url)
    body = await succeeds(api, receiver, task_id)
    assert body["polls"] == 2, "the timed-out poll counts, the next one finished the task"
    await polls_counted(api, "timeout")


@pytest.mark.parametrize("manners", [{"untrusted": True}])
async def test_an_upstream_with_an_untrusted_certificate_is_a_tls_fault_retried(
    api: Api, upstream: ScriptedUpstream, worker: WorkerContext
) -> None:
    task_id = new_id()
    upstream.script(task_id, {"task_id": task_id, **FINISHED})
    await api.register(task_id)
    await polls_counted(api, "tls", at_least=2)
    assert upstream.calls[task_id] == 0, "nothing was sent over the unverified connection"
    assert (await api.task(task_id)).json()["status"] == "queued"
    assert not any(loop.done() for loop in worker.loops), "the worker runs on"


async def test_a_receiver_with_an_untrusted_certificate_is_a_failed_attempt_retried(
    api: Api, upstream: ScriptedUpstream, untrusted_tls: ssl.SSLContext
) -> None:
    hostile = Receiver(fronting=Fronting(tls=untrusted_tls))
    await hostile.start()
    try:
        task_id = new_id()
        upstream.script(task_id, {"task_id": task_id, **FINISHED})
        await api.register(task_id, webhook_url=hostile.url)
        await api.wait_status(task_id, "succeeded")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 8
        while True:
            listing = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()
            attempts = [a for d in listing["deliveries"] for a in d["attempts"]]
            if len(attempts) >= 2:
                break
            assert loop.time() < deadline, listing
            await asyncio.sleep(0.05)
        assert all(a["status_code"] is None for a in attempts)
        assert all(a["error"].startswith("tls:") for a in attempts), attempts
        assert not hostile.received
    finally:
        await hostile.stop()


async def test_a_receiver_answering_a_compressed_bomb_is_delivered_its_excerpt_kept(
    api: Api, upstream: ScriptedUpstream, tls: ssl.SSLContext
) -> None:
    front = Front(bomb_handler, ssl_context=tls)
    await front.start()
    try:
        task_id = new_id()
        upstream.script(task_id, {"task_id": task_id, **FINISHED})
        await api.register(task_id, webhook_url=front.url + "/hooks")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 8
        while True:
            listing = (await api.client.get(f"/v1/tasks/{task_id}/deliveries")).json()
            if listing["deliveries"] and listing["deliveries"][0]["status"] == "delivered":
                break
            assert loop.time() < deadline, listing
            await asyncio.sleep(0.05)
        # The one that delivered it (on a slow machine a first try may time out: a retry).
        attempt = listing["deliveries"][0]["attempts"][-1]
        assert attempt["status_code"] == 200 and attempt["error"] is None
        assert attempt["response"] == "\0" * 256, "the first 256 bytes of 200 MiB"
    finally:
        await front.stop()
