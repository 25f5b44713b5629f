"""deploy/grafana/journey-relay.json, the operators' dashboard: every query names metrics a
running relay exports, and every metric it exports has a panel (both read from its own
GET /metrics, not from a list kept here), as has every metric the README tells operators
to watch."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "journey-relay.json"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_METRIC = re.compile(r"\brelay_[a-zA-Z0-9_]+\b")


def metric_names(expr: str) -> set[str]:
    """The relay metrics a PromQL expression reads; label values (quoted) are not names."""
    return set(_METRIC.findall(_STRING.sub('""', expr)))


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("max(relay_tracked_tasks)", {"relay_tracked_tasks"}),
        (
            'histogram_quantile(0.95, max by (le) (rate(relay_a_bucket{job=~"$job"}[5m])))',
            {"relay_a_bucket"},
        ),
        ('max(rate(relay_x_total{outcome="relay_not_a_metric"}[1m]))', {"relay_x_total"}),
        (
            "max(rate(relay_a_sum[1m])) / max(rate(relay_a_count[1m]))",
            {"relay_a_sum", "relay_a_count"},
        ),
        ("up", set()),
        ('label_values(relay_due_tasks, job) or vector(1) > "relay_"', {"relay_due_tasks"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from panels(panel)


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    found = [
        (f"panel {p['title']!r}", t["expr"])
        for p in panels(dashboard())
        for t in p.get("targets", [])
    ]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append((f"variable {variable['name']}", query.get("query", query)))
    return found


def exported(text: str) -> dict[str, set[str]]:
    """family -> every sample name a scrape can hold for it, from what /metrics declares."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    families: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        names = {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        families[family.name] = names | {sample.name for sample in family.samples}
    return families


async def scrape(api: Api) -> dict[str, set[str]]:
    response = await api.client.get("/metrics", headers={"authorization": ""})
    assert response.status_code == 200, response.text
    return exported(response.text)


async def test_every_query_names_only_metrics_the_relay_exports(api: Api) -> None:
    names = set().union(*(await scrape(api)).values())
    assert "relay_polls_total" in names and "relay_delivery_latency_seconds_bucket" in names

    found = queries()
    assert len(found) >= 10
    for where, expr in found:
        read = metric_names(expr)
        assert read, f"{where} reads no relay metric: {expr}"
        assert read <= names, f"{where} names what the relay does not export: {read - names}"


async def test_every_metric_the_relay_exports_has_a_panel(api: Api) -> None:
    read = set().union(*(metric_names(expr) for _, expr in queries()))
    families = await scrape(api)
    assert len(families) >= 10
    assert sorted(family for family, names in families.items() if not names & read) == []


def test_every_metric_the_readme_lists_has_a_panel() -> None:
    table = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `relay_")
    ]
    listed = {name for line in table for name in _METRIC.findall(line.split("|")[1])}
    assert len(listed) >= 10, table
    read = set().union(*(metric_names(expr) for _, expr in queries()))
    missing = {n for n in listed if not any(r == n or r.startswith(n + "_") for r in read)}
    assert missing == set()


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    all_panels = list(panels(board))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"{panel['title']!r} has no query"
            # Every panel follows the dashboard's data source picker.
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
