"""The throughput of one 60-second download and one upload through the gateway, as
Prometheus saw them (1 s scrapes of /metrics), drawn into docs/throughput.png.

    make bench-chart             # or: .venv/bin/python bench/throughput_chart.py

The upstream is the STUB UPSTREAM (tests/faults/stub_upstream.py, not an engine); the
client reads the download and sends the upload at a steady pace, so the curve shows bytes
counted while they move, not a spike when the transfer ends.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import processes

SECONDS = 60
PACE_BYTES_PER_SECOND = 20_000_000
DOWNLOAD = "/engine-rest/process-instance/p/variables/v/data?size={size}"
UPLOAD = "/engine-rest/task/t/variables/v/data"
QUERY = "sum by (direction) (rate(engine_gateway_transferred_bytes_total[5s]))"
CHART = Path(__file__).resolve().parent.parent / "docs" / "throughput.png"


async def _paced(client: aiohttp.ClientSession, gateway: str) -> None:
    size = SECONDS * PACE_BYTES_PER_SECOND
    chunk = PACE_BYTES_PER_SECOND // 10
    started = time.monotonic()

    async def body() -> AsyncIterator[bytes]:
        for index in range(size // chunk):
            await asyncio.sleep(max(0.0, started + index / 10 - time.monotonic()))
            yield b"u" * chunk

    async def download() -> None:
        async with client.get(gateway + DOWNLOAD.format(size=size)) as response:
            for index in range(size // chunk):
                await response.content.readexactly(chunk)
                await asyncio.sleep(max(0.0, started + (index + 1) / 10 - time.monotonic()))

    async def upload() -> None:
        headers = {"Content-Type": "application/octet-stream"}
        async with client.post(gateway + UPLOAD, data=body(), headers=headers) as response:
            assert response.status == 204, await response.text()

    await asyncio.gather(download(), upload())


def _range(prometheus: str, start: float, end: float) -> dict[str, list[tuple[float, float]]]:
    query = urlencode({"query": QUERY, "start": start, "end": end, "step": 1})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}") as answer:  # noqa: S310
        result = json.loads(answer.read())["data"]["result"]
    return {
        series["metric"]["direction"]: [(float(t), float(v)) for t, v in series["values"]]
        for series in result
    }


def _stopped(prometheus: str) -> bool:
    query = urlencode({"query": QUERY})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}") as answer:  # noqa: S310
        result = json.loads(answer.read())["data"]["result"]
    return bool(result) and all(float(series["value"][1]) == 0 for series in result)


def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-chart-"))
    with (
        processes.stub_upstream() as stub_url,
        processes.gateway(work_dir, stub_url, "--max-upload-bytes", "0") as gateway,
        processes.prometheus(work_dir, gateway.admin_url.removeprefix("http://")) as prometheus,
    ):
        start = time.time()
        asyncio.run(_run(gateway.base_url))
        # Until Prometheus has seen the bytes stop, so the curve comes back down to zero.
        processes.wait_until(
            lambda: _stopped(prometheus.base_url), timeout_seconds=30, what="the last scrapes"
        )
        series = _range(prometheus.base_url, start - 5, time.time() + 2)
    figure, axes = plt.subplots(figsize=(9, 3.6), dpi=110)
    for direction, points in sorted(series.items()):
        axes.plot([t - start for t, _ in points], [v / 1e6 for _, v in points], label=direction)
    axes.set_xlabel("seconds")
    axes.set_ylabel("MB/s")
    axes.set_title(
        f"rate(engine_gateway_transferred_bytes_total[5s]), 1 s scrapes: {SECONDS} s transfers"
    )
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    CHART.parent.mkdir(exist_ok=True)
    figure.savefig(CHART)
    print(f"wrote {CHART}")
    return 0


async def _run(gateway: str) -> None:
    async with aiohttp.ClientSession() as client:
        await _paced(client, gateway)


if __name__ == "__main__":
    sys.exit(main())
