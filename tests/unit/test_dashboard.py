"""The Grafana dashboard, linted: it must work on first import against what we export."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gateway import metrics
from tests.processes import ROOT

DASHBOARD = ROOT / "grafana" / "dashboards" / "engine-gateway.json"
METRIC_NAME = re.compile(r"\b((?:engine_gateway|process)_[a-z_]+)\b")
RATE_WINDOW = re.compile(r"\b(?:rate|increase|irate)\([^\[]*\[([^\]]+)\]")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def expressions() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def exported_names() -> set[str]:
    """Every sample name the registry can expose, suffixes (_total, _bucket, …) included,
    also for labelled metrics that have no samples yet."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names = set()
    for family in metrics.create().registry.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_the_datasource_is_a_variable_never_a_fixed_uid() -> None:
    [variable] = [v for v in dashboard()["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    expected = {"type": "prometheus", "uid": "${" + variable["name"] + "}"}
    for panel in dashboard()["panels"]:
        assert panel["datasource"] == expected, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]


def test_every_panel_has_a_unit() -> None:
    for panel in dashboard()["panels"]:
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]


@pytest.mark.parametrize("expr", expressions())
def test_rate_windows_follow_the_scrape_interval(expr: str) -> None:
    # $__rate_interval is at least 4 times the scrape interval; $__range is the whole view.
    for window in RATE_WINDOW.findall(expr):
        assert window in ("$__rate_interval", "$__range"), expr


@pytest.mark.parametrize("expr", expressions())
def test_every_metric_in_a_query_is_exported(expr: str) -> None:
    names = METRIC_NAME.findall(expr)
    assert names, expr
    assert set(names) <= exported_names(), expr


def test_the_dashboard_covers_what_operators_asked_for() -> None:
    queried = " ".join(expressions())
    for needed in (
        "engine_gateway_transferred_bytes_total",
        "engine_gateway_streams_in_flight",
        "engine_gateway_requests_total",
        "engine_gateway_request_duration_seconds_bucket",
        "engine_gateway_time_to_first_byte_seconds_bucket",
        "engine_gateway_transfer_size_bytes_bucket",
        "engine_gateway_upstream_ready",
        "engine_gateway_scans_total",
        "engine_gateway_scan_duration_seconds_bucket",
        "engine_gateway_scanned_bytes_total",
        "engine_gateway_digest_mismatches_total",
        "engine_gateway_json_files_total",
        "engine_gateway_json_file_bytes_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ):
        assert needed in queried
