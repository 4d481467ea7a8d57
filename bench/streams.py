"""Streaming figures against a fast STUB UPSTREAM (tests/faults/stub_upstream.py, not an
engine), so that the gateway is what is measured:

- a 4 GiB download and a 4 GiB multipart upload (validated on the way), direct and
  through the gateway, with curl as the client;
- 100 concurrent 40 MB downloads and uploads, direct and through the gateway (aiohttp
  client);
- what counting costs: the 4 GiB download and upload through a gateway with `--metrics on`
  and one with `--metrics off`, alternating, ROUNDS times each.

For each: throughput (MB/s) and the gateway's RSS growth: kernel VmHWM of the gateway's pid,
reset before the run (`echo 5 > /proc/PID/clear_refs`), minus VmRSS at idle.

    .venv/bin/python bench/streams.py            # writes bench/results/streams.json
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import proc
from tests import processes

GIB = 1 << 30
RESULTS = Path(__file__).resolve().parent / "results"
ROUNDS = 3
DOWNLOAD = "/engine-rest/process-instance/p/variables/v/data?size={size}"
UPLOAD = "/engine-rest/task/t/variables/v/data"


def _curl(args: list[str]) -> float:
    """Runs curl and returns the seconds it took."""
    started = time.monotonic()
    subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", *args], check=True)
    return time.monotonic() - started


def _single(base: str, big_file: Path) -> dict[str, float]:
    down = _curl([base + DOWNLOAD.format(size=4 * GIB)])
    up = _curl(
        ["-F", f"data=@{big_file};type=application/octet-stream", "-F", "valueType=Bytes",
         base + UPLOAD]
    )  # fmt: skip
    return {"download_mb_s": 4 * GIB / 1e6 / down, "upload_mb_s": 4 * GIB / 1e6 / up}


async def _concurrent(base: str, streams: int, size: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def download() -> int:
            received = 0
            async with client.get(base + DOWNLOAD.format(size=size)) as response:
                assert response.status == 200
                async for chunk in response.content.iter_chunked(1 << 20):
                    received += len(chunk)
            return received

        async def upload() -> None:
            form = aiohttp.FormData()
            form.add_field("data", b"u" * size, content_type="application/octet-stream")
            form.add_field("valueType", "Bytes")
            async with client.post(base + UPLOAD, data=form) as response:
                assert response.status == 204, await response.text()

        started = time.monotonic()
        received = await asyncio.gather(*(download() for _ in range(streams)))
        down_seconds = time.monotonic() - started
        assert sum(received) == streams * size
        started = time.monotonic()
        await asyncio.gather(*(upload() for _ in range(streams)))
        up_seconds = time.monotonic() - started
    total_mb = streams * size / 1e6
    return {"download_mb_s": total_mb / down_seconds, "upload_mb_s": total_mb / up_seconds}


def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    big_file = work_dir / "4gib.bin"
    with big_file.open("wb") as sparse:
        sparse.truncate(4 * GIB)
    try:
        with (
            processes.stub_upstream() as stub_url,
            processes.gateway(work_dir, stub_url, "--max-upload-bytes", "0") as gateway,
        ):
            pid = gateway.running.pid
            direct = _single(stub_url, big_file)
            idle = first_idle = proc.reset_peak(pid)
            through = _single(gateway.base_url, big_file)
            single_growth = (proc.kib(pid, "VmHWM") - idle) / 1024

            concurrent_direct = asyncio.run(_concurrent(stub_url, 100, 40_000_000))
            idle = proc.reset_peak(pid)
            concurrent = asyncio.run(_concurrent(gateway.base_url, 100, 40_000_000))
            concurrent_growth = (proc.kib(pid, "VmHWM") - idle) / 1024

            off = ("--max-upload-bytes", "0", "--metrics", "off")
            with processes.gateway(work_dir, stub_url, *off) as uncounted:
                metrics_on, metrics_off = [], []
                for _ in range(ROUNDS):
                    metrics_on.append(_single(gateway.base_url, big_file))
                    metrics_off.append(_single(uncounted.base_url, big_file))
    finally:
        big_file.unlink()
    result = {
        "upstream": "stub upstream (aiohttp), not an engine",
        "machine": f"{os.cpu_count()} cores",
        "gateway_idle_rss_mib": round(first_idle / 1024, 1),
        "4gib_direct": {k: round(v) for k, v in direct.items()},
        "4gib_through_gateway": {k: round(v) for k, v in through.items()},
        "4gib_gateway_rss_growth_mib": round(single_growth, 1),
        "100x40mb_direct": {k: round(v) for k, v in concurrent_direct.items()},
        "100x40mb_through_gateway": {k: round(v) for k, v in concurrent.items()},
        "100x40mb_gateway_rss_growth_mib": round(concurrent_growth, 1),
        "4gib_metrics_on": [{k: round(v) for k, v in run.items()} for run in metrics_on],
        "4gib_metrics_off": [{k: round(v) for k, v in run.items()} for run in metrics_off],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "streams.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = single_growth <= 32 and concurrent_growth <= 256
    print("OK" if ok else "OVER", "(targets: 32 MiB for one 4 GiB stream, 256 MiB for 100 streams)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
