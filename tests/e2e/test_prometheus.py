"""A real Prometheus (Debian's) scrapes the gateway while it moves files to and from the
real engine, scanned by Debian's clamd: every dashboard query returns data, the exposition
passes promtool, and the shipped alert rules load, check and pass their unit tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests import processes
from tests.integration import engine_api
from tests.integration.documents import key_file, new_key

DASHBOARD = processes.ROOT / "grafana" / "dashboards" / "engine-gateway.json"
PROMETHEUS_DIR = processes.ROOT / "deploy" / "prometheus"
# What Grafana would put in for "All" and its intervals, with a 1 s scrape interval.
SUBSTITUTIONS = {"$job": ".+", "$route": ".+", "$__rate_interval": "15s", "$__range": "5m"}
DEADLINE_SECONDS = 90
SIZE = 2_000_000


@pytest.fixture(scope="module")
def scanning_gateway(
    engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gateway]:
    """The gateway with every inspection on and a document store (the traffic's 2 MB files
    go to it), so that every panel has something to show."""
    work_dir = tmp_path_factory.mktemp("scanning")
    keys = key_file(work_dir, new_key())
    with (
        processes.clamd(work_dir) as clamd,
        processes.gateway(
            work_dir,
            engine_process.base_url,
            "--clamd",
            clamd.unix_url,
            "--clamd-scan-downloads",
            "on",
            "--document-store",
            f"file://{work_dir / 'documents'}",
            "--document-key-file",
            str(keys),
        ) as started,
    ):
        yield started


@pytest.fixture(scope="module")
def prometheus_process(
    scanning_gateway: processes.Gateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Running]:
    target = scanning_gateway.admin_url.removeprefix("http://")
    with processes.prometheus(tmp_path_factory.mktemp("prometheus"), target) as running:
        yield running


def _query(prometheus: processes.Running, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus.base_url}/api/v1/query?{urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _has_data(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(series["value"][1])) for series in result)


def _panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in SUBSTITUTIONS.items():
                expr = expr.replace(variable, value)
            found.append((f"{panel['title']} / {target['refId']}", expr))
    return found


@contextlib.asynccontextmanager
async def _traffic(gateway: str, engine: str) -> AsyncIterator[None]:
    """Uploads and downloads through the gateway, round after round, until stopped."""
    _, task_id = engine_api.start_instance(engine)
    headers = {"Authorization": engine_api.AUTHORIZATION}

    async def run(client: aiohttp.ClientSession) -> None:
        url = f"{gateway}/engine-rest/task/{task_id}/variables/doc/data"
        while True:
            form = engine_api.variable_form(
                engine_api.pseudo_random_chunks(SIZE, 1), SIZE, value_type="File", filename="a.bin"
            )
            async with client.post(
                url,
                data=form.stream(),
                headers={"Content-Type": form.content_type, "Content-Length": str(form.length)},
            ) as response:
                assert response.status == 204
            async with client.get(url) as response:
                assert len(await response.read()) == SIZE
            # A file in JSON: counted as such, and scanned.
            value = {"type": "Bytes", "value": base64.b64encode(bytes(SIZE // 10)).decode()}
            json_url = f"{gateway}/engine-rest/task/{task_id}/variables/json"
            async with client.put(json_url, json=value) as response:
                assert response.status == 204
            # A claimed digest that does not match: refused, counted as a mismatch.
            wrong = {"Repr-Digest": "sha-256=:" + "A" * 43 + "=:", "Content-Type": "text/plain"}
            async with client.put(url, data=b"x", headers=wrong) as response:
                assert response.status == 400
            # A document through the documents API.
            document = aiohttp.FormData()
            document.add_field("file", b"traffic", filename="t.txt", content_type="text/plain")
            async with client.post(f"{gateway}/documents", data=document) as response:
                assert response.status == 201

    async with aiohttp.ClientSession(headers=headers) as client:
        task = asyncio.create_task(run(client))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_every_dashboard_query_returns_data(
    deployment: dict[str, object],
    prometheus_process: processes.Running,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    queries = dict(_panel_queries())
    waiting = dict(queries)
    async with _traffic(scanning_gateway.base_url, engine_process.base_url):
        deadline = time.monotonic() + DEADLINE_SECONDS
        while waiting:
            for name, expr in list(waiting.items()):
                if _has_data(await asyncio.to_thread(_query, prometheus_process, expr)):
                    del waiting[name]
            assert time.monotonic() < deadline, f"no data for: {sorted(waiting)}"
            await asyncio.sleep(0.5)  # polling interval, not synchronisation
    assert len(queries) >= 17
    [ready] = _query(prometheus_process, 'min(engine_gateway_upstream_ready{job="engine-gateway"})')
    assert ready["value"][1] == "1"


def test_the_exposition_passes_promtool(scanning_gateway: processes.Gateway) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback
        scanning_gateway.admin_url + "/metrics", headers={"Accept-Encoding": "identity"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        exposition = response.read()
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
        ["check", "config", "prometheus.yml"],
    ],
)
def test_shipped_prometheus_files_pass_promtool(command: list[str]) -> None:
    checked = subprocess.run(
        ["promtool", *command], cwd=PROMETHEUS_DIR, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_loaded_every_alert_rule(prometheus_process: processes.Running) -> None:
    url = f"{prometheus_process.base_url}/api/v1/rules"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        groups = json.loads(response.read())["data"]["groups"]
    rules = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert set(rules) == {
        "EngineGatewayDown",
        "EngineGatewayEngineNotReady",
        "EngineGatewayHigh5xxRatio",
        "EngineGatewayUpstreamAborts",
        "EngineGatewayStalledStreams",
        "EngineGatewayScannerUnavailable",
        "EngineGatewayMalwareFound",
        "EngineGatewayDocumentStoreErrors",
        "EngineGatewayDocumentMissing",
    }
    assert set(rules.values()) <= {"ok", "unknown"}  # unknown: not evaluated yet
