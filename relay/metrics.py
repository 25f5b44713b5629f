"""Metrics shared by every process through Redis, rendered in Prometheus format by the API.

Workers have no HTTP server of their own and there may be many of them, so
each process counts in memory and adds its counts to one Redis hash about
once a second; `GET /metrics` on any API replica reads that hash and the
queue depths and renders them. The figures are cluster-wide totals: scrape
one API replica, or aggregate with `max`, not `sum`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from relay.store import stats
from relay.store.redis import Client

logger = logging.getLogger("relay.metrics")

# name -> (help, label names)
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "relay_registrations_total": ("Task registrations by outcome", ("outcome",)),
    "relay_polls_total": ("Upstream fetches by outcome", ("outcome",)),
    "relay_events_total": ("Task events made, by type", ("type",)),
    "relay_deliveries_total": ("Webhook attempts by how they ended", ("outcome",)),
    "relay_upstream_webhooks_total": ("Upstream webhooks received, by outcome", ("outcome",)),
    "relay_rate_limited_claims_total": ("Poll claims held back by the shared rate limit", ()),
    "relay_write_errors_total": (
        "Items set aside by a batched write, the others written all the same: an outcome"
        " (polled again) or a registration that could not be read (no delivery for it)",
        ("item",),
    ),
    "relay_receiver_deferred_total": (
        "Due webhook attempts put off without spending an attempt: the receiver held"
        " (attempts skipped while held), at its in-flight bound (busy), or its tenant"
        " at its share of the worker's delivery slots (share)",
        ("reason",),
    ),
    "relay_receiver_holds_total": ("Receivers held after failing repeatedly", ()),
    "relay_receiver_probes_total": (
        "Probes of held receivers, by what they found (up ends the hold)",
        ("outcome",),
    ),
    "relay_deliveries_expired_total": (
        "Deliveries ended failed while their receiver was held, the retry span having passed",
        (),
    ),
}
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "relay_upstream_duration_seconds": (
        "Time one upstream fetch took",
        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    ),
    "relay_delivery_duration_seconds": (
        "Time one webhook attempt took",
        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    ),
    "relay_delivery_latency_seconds": (
        "From an event being made to its webhook being accepted",
        (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
    ),
}
FLUSH_INTERVAL = 1.0


def _field(name: str, labels: tuple[str, ...]) -> str:
    return name + "|" + ",".join(labels)


class Recorder:
    """Counts in memory; `flush` adds them to Redis in one round trip."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._sums: dict[str, float] = {}

    def inc(self, name: str, *labels: str, by: int = 1) -> None:
        self._counts[_field(name, labels)] += by

    def observe(self, name: str, value: float) -> None:
        bounds = HISTOGRAMS[name][1]
        # Non-cumulative bucket counts; the renderer accumulates them.
        index = bisect.bisect_left(bounds, value)
        bucket = str(bounds[index]) if index < len(bounds) else "+Inf"
        self._counts[_field(name + "_bucket", (bucket,))] += 1
        field = _field(name + "_sum", ())
        self._sums[field] = self._sums.get(field, 0.0) + value

    async def flush(self, redis: Client) -> None:
        if not self._counts and not self._sums:
            return
        counts, sums = self._counts, self._sums
        self._counts, self._sums = Counter(), {}
        try:
            await stats.add_counts(redis, counts, sums)
        except Exception:
            # Keep the counts for the next flush rather than lose them.
            self._counts.update(counts)
            for field, total in sums.items():
                self._sums[field] = self._sums.get(field, 0.0) + total
            raise

    async def run(self, redis: Client, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), FLUSH_INTERVAL)
            try:
                await self.flush(redis)
            except Exception as exc:
                logger.warning("metrics flush failed: %s", exc)


class _Static:
    """A collector that yields metric families built beforehand."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def render(redis: Client) -> bytes:
    snap = await stats.snapshot(redis, time.time())
    stored = snap.counters
    families: list[Metric] = []
    for name, (help_text, label_names) in COUNTERS.items():
        family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=label_names)
        for field, value in stored.items():
            metric, _, labels = field.partition("|")
            if metric == name:
                values = labels.split(",") if label_names else []
                family.add_metric(values, float(value))
        families.append(family)
    for name, (help_text, bounds) in HISTOGRAMS.items():
        buckets, running = [], 0.0
        for bound in [*map(str, bounds), "+Inf"]:
            running += float(stored.get(_field(name + "_bucket", (bound,)), 0))
            buckets.append((bound, running))
        histogram = HistogramMetricFamily(name, help_text)
        histogram.add_metric([], buckets, float(stored.get(_field(name + "_sum", ()), 0)))
        families.append(histogram)
    gauges: dict[str, tuple[str, int]] = {
        "relay_tracked_tasks": ("Tasks being polled", snap.tracked),
        "relay_due_tasks": ("Tasks due for a poll now (the poll backlog)", snap.due),
        "relay_pending_deliveries": ("Webhook attempts scheduled", snap.deliveries),
        "relay_due_deliveries": (
            "Webhook attempts due now (the delivery backlog)",
            snap.deliveries_due,
        ),
        "relay_upstream_paused": (
            "1 while a 429 Retry-After holds every worker's calls",
            1 if snap.paused else 0,
        ),
        "relay_upstream_unauthorized": (
            "1 while the upstream refuses the API key (401)",
            1 if snap.unauthorized else 0,
        ),
        "relay_held_receivers": (
            "Receivers (scheme://host:port) held by the circuit breaker: only probes reach them",
            snap.held_receivers,
        ),
    }
    for gauge, (text, level) in gauges.items():
        families.append(GaugeMetricFamily(gauge, text, value=float(level)))
    tenant_due = GaugeMetricFamily(
        "relay_tenant_due_tasks",
        "Tasks due for a poll now, per tenant (a task shared by tenants counts for each;"
        " claims in flight count as due)",
        labels=("tenant",),
    )
    for tenant, count in snap.due_per_tenant:
        tenant_due.add_metric([tenant], float(count))
    families.append(tenant_due)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(families))
    return generate_latest(registry)
