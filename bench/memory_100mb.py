"""Upload and download 100 MB through the gateway against the real engine, and report the
gateway's peak RSS above idle (its body must never be held in memory).

    make bench-memory            # or: ENGINE=camunda .venv/bin/python bench/memory_100mb.py

Peak RSS is the kernel's VmHWM for the gateway's pid, reset just before the transfers
(`echo 5 > /proc/PID/clear_refs`), minus VmRSS at idle.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import proc
from tests import processes
from tests.integration import engine_api

SIZE_BYTES = 100 * 1_000_000
LIMIT_MIB = 64
RESULTS = Path(__file__).resolve().parent / "results"


async def _transfer(gateway_url: str, instance_id: str, task_id: str) -> dict[str, float]:
    form = engine_api.variable_form(
        engine_api.pseudo_random_chunks(SIZE_BYTES, 1),
        SIZE_BYTES,
        value_type="File",
        filename="big.bin",
    )
    headers = {"Authorization": engine_api.AUTHORIZATION}
    async with aiohttp.ClientSession(headers=headers) as client:
        started = time.monotonic()
        url = f"{gateway_url}/engine-rest/task/{task_id}/variables/big/data"
        status, text = await engine_api.post_form(client, url, form)
        assert status == 204, text
        upload_seconds = time.monotonic() - started

        started = time.monotonic()
        digest = hashlib.sha256()
        url = f"{gateway_url}/engine-rest/process-instance/{instance_id}/variables/big/data"
        async with client.get(url) as response:
            assert response.status == 200
            async for chunk in response.content.iter_chunked(1 << 20):
                digest.update(chunk)
        download_seconds = time.monotonic() - started
    assert digest.hexdigest() == engine_api.pseudo_random_sha256(SIZE_BYTES, 1), "corrupted"
    return {"upload_seconds": upload_seconds, "download_seconds": download_seconds}


def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    with processes.engine(work_dir) as engine:
        with processes.gateway(work_dir, engine.base_url) as gateway:
            engine_api.deploy(engine.base_url)
            instance_id, task_id = engine_api.start_instance(engine.base_url)
            pid = gateway.running.pid
            idle_kib = proc.reset_peak(pid)
            timings = asyncio.run(_transfer(gateway.base_url, instance_id, task_id))
            peak_kib = proc.kib(pid, "VmHWM")
    above_idle_mib = (peak_kib - idle_kib) / 1024
    result = {
        "engine": processes.engine_name(),
        "size_bytes": SIZE_BYTES,
        "gateway_idle_rss_mib": round(idle_kib / 1024, 1),
        "gateway_peak_rss_mib": round(peak_kib / 1024, 1),
        "gateway_peak_above_idle_mib": round(above_idle_mib, 1),
        "upload_mb_per_second": round(SIZE_BYTES / 1e6 / timings["upload_seconds"], 1),
        "download_mb_per_second": round(SIZE_BYTES / 1e6 / timings["download_seconds"], 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory_100mb.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    verdict = "OK" if above_idle_mib < LIMIT_MIB else "OVER"
    print(
        f"{verdict}: gateway peak RSS {above_idle_mib:.1f} MiB above idle (limit {LIMIT_MIB} MiB)"
    )
    return 0 if above_idle_mib < LIMIT_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
