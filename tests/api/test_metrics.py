"""`GET /metrics`: Prometheus text with the cluster-wide counters, histograms and gauges the
API and the worker flush to Redis about once a second; and the upstream-refused-key signal
in the metrics and `/readyz`."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from relay.settings import Settings
from support.payloads import finished, new_id, processing
from support.servers import Canned, Receiver, ScriptedUpstream
from tests.conftest import Api, running_worker

FLUSH_WAIT = 1.3  # every process adds its counts to Redis once a second


class Scrape:
    """One parsed scrape of /metrics."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: list[Sample] = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float | None:
        for sample in self.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        return None

    def labels_of(self, name: str, label: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in self.samples if s.name == name}


async def scrape(api: Api) -> Scrape:
    response = await api.client.get("/metrics", headers={"authorization": ""})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return Scrape(response.text)


async def readyz_says(api: Api, upstream: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ready = await api.client.get("/readyz", headers={"authorization": ""})
        assert ready.status_code == 200, ready.text
        if ready.json()["upstream"] == upstream:
            return
        assert loop.time() < deadline, f"/readyz still says {ready.json()}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def refusing_receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    server.answers = [500] * 1000
    await server.start()
    yield server
    await server.stop()


async def test_metrics_need_no_key_and_parse_as_prometheus_text(api: Api) -> None:
    for headers in ({"authorization": ""}, {"authorization": "Bearer nope"}):
        response = await api.client.get("/metrics", headers=headers)
        assert response.status_code == 200, response.text
    metrics = await scrape(api)
    for name in (
        "relay_registrations",
        "relay_polls",
        "relay_deliveries",
        "relay_events",
        "relay_upstream_webhooks",
        "relay_delivery_latency_seconds",
        "relay_upstream_duration_seconds",
        "relay_delivery_duration_seconds",
        "relay_tracked_tasks",
        "relay_pending_deliveries",
        "relay_upstream_unauthorized",
    ):
        assert name in metrics.families, sorted(metrics.families)
    assert metrics.families["relay_registrations"].type == "counter"
    assert metrics.families["relay_delivery_latency_seconds"].type == "histogram"
    assert metrics.families["relay_tracked_tasks"].type == "gauge"
    assert metrics.value("relay_upstream_unauthorized") == 0


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("env_overrides", [{"RELAY_DELIVERY_RETRY_SCHEDULE": "0.05,0.05,60"}])
async def test_metrics_count_registrations_polls_and_deliveries(
    api: Api, upstream: ScriptedUpstream, receiver: Receiver, refusing_receiver: Receiver
) -> None:
    # A task whose first fetch answers 500, then finishes; its receiver answers 500 once.
    faulty = new_id()
    upstream.script(faulty, Canned(b"", status=500), finished(faulty))
    receiver.answers = [500]
    # A task still running: tracked.
    running = new_id()
    upstream.script(running, processing(running))
    # A task whose receiver refuses every attempt: after two quick retries, one is scheduled
    # a minute ahead: pending.
    refused = new_id()
    upstream.script(refused, finished(refused))

    assert (await api.register(faulty, webhook_url=receiver.url)).status_code == 201
    assert (await api.register(faulty, webhook_url=receiver.url)).status_code == 200
    assert (await api.register(running)).status_code == 201
    assert (await api.register(refused, webhook_url=refusing_receiver.url)).status_code == 201
    assert (await api.register(faulty, events=[])).status_code == 409

    await receiver.wait_for(2)  # the 500 and the retry that got 204
    await refusing_receiver.wait_for(3)
    await api.wait_status(running, "running")
    await asyncio.sleep(FLUSH_WAIT)
    metrics = await scrape(api)

    registrations = metrics.labels_of("relay_registrations_total", "outcome")
    assert registrations.get("created") == 3, registrations
    assert registrations.get("exists") == 1, registrations
    assert registrations.get("conflict") == 1, registrations

    polls = metrics.labels_of("relay_polls_total", "outcome")
    assert polls.get("http_500", 0) >= 1, polls
    assert polls.get("ok", 0) >= 3, polls

    deliveries = metrics.labels_of("relay_deliveries_total", "outcome")
    assert deliveries.get("delivered", 0) >= 1, deliveries
    assert deliveries.get("retry", 0) >= 3, deliveries  # one for faulty, two for refused

    events = metrics.labels_of("relay_events_total", "type")
    assert events.get("task.succeeded", 0) >= 2, events

    for histogram in (
        "relay_delivery_latency_seconds",
        "relay_upstream_duration_seconds",
        "relay_delivery_duration_seconds",
    ):
        count = metrics.value(histogram + "_count")
        assert count is not None and count > 0, (histogram, count)
        total = metrics.value(histogram + "_sum")
        assert total is not None and total >= 0, (histogram, total)
        inf = metrics.value(histogram + "_bucket", le="+Inf")
        assert inf == count, (histogram, inf, count)
        buckets = [
            s.value for s in metrics.samples if s.name == histogram + "_bucket"
        ]  # cumulative: never decreasing
        assert buckets == sorted(buckets), (histogram, buckets)
    latency = metrics.value("relay_delivery_latency_seconds_count")
    assert latency is not None and latency >= 1
    upstream_calls = metrics.value("relay_upstream_duration_seconds_count")
    assert upstream_calls is not None and upstream_calls >= sum(polls.values())

    tracked = metrics.value("relay_tracked_tasks")
    assert tracked is not None and tracked >= 1, "the running task is tracked"
    pending = metrics.value("relay_pending_deliveries")
    assert pending is not None and pending >= 1, "the refused delivery waits for its retry"
    assert metrics.value("relay_upstream_unauthorized") == 0


@pytest.mark.usefixtures("worker")
async def test_an_upstream_401_shows_in_metrics_and_readyz_until_a_poll_succeeds(
    api: Api, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A refused key holds every worker's calls for this long before one probes again.
    monkeypatch.setattr("workers.poller.UNAUTHORIZED_PAUSE", 1.0)
    task_id = new_id()
    upstream.script(task_id, Canned({}, status=401), processing(task_id))
    assert (await api.register(task_id, events=[])).status_code == 201

    await readyz_says(api, "unauthorized")
    assert (await scrape(api)).value("relay_upstream_unauthorized") == 1

    # The key is accepted again at the next poll: the signal clears.
    await api.wait_status(task_id, "running", timeout=10)
    await readyz_says(api, "ok")
    assert (await scrape(api)).value("relay_upstream_unauthorized") == 0
    await asyncio.sleep(FLUSH_WAIT)
    polls = (await scrape(api)).labels_of("relay_polls_total", "outcome")
    assert polls.get("http_401", 0) >= 1, polls


@pytest.mark.parametrize("env_overrides", [{"RELAY_UPSTREAM_API_KEY": "revoked-key"}])
async def test_the_401_signal_clears_when_a_restarted_worker_polls_with_a_good_key(
    api: Api, upstream: ScriptedUpstream, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual remedy for a refused key: fix RELAY_UPSTREAM_API_KEY and restart the worker.
    The new process's first successful poll must clear the signal the old one raised."""
    monkeypatch.setattr("workers.poller.UNAUTHORIZED_PAUSE", 0.5)
    task_id = new_id()
    upstream.script(task_id, processing(task_id))
    assert (await api.register(task_id, events=[])).status_code == 201
    async with running_worker(settings):
        await readyz_says(api, "unauthorized")
    assert (await api.task(task_id)).json()["status"] == "queued"

    fixed = dataclasses.replace(settings, upstream_api_key="upstream-key")
    async with running_worker(fixed):
        await api.wait_status(task_id, "running", timeout=10)
        await readyz_says(api, "ok")
    assert (await scrape(api)).value("relay_upstream_unauthorized") == 0
