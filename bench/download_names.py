"""What the real engine sends as a download's name, what the gateway sends instead, and what
a metadata lookup costs in latency.

    make bench-names             # or: ENGINE=camunda .venv/bin/python bench/download_names.py

Writes bench/results/download_names.json and prints the table docs/endpoints.md shows.
Latency is the wall time of a whole GET of a 1 KiB File variable (headers and body), one
request at a time on keep-alive connections, the cases taken in turn, median and p95 of ROUNDS
requests per case after WARMUP rounds:
- `direct`: the engine itself;
- `gateway, name from the engine`: an ASCII name, so the engine's header is exact;
- `gateway, scope lookup`: a name Tomcat drops, by process instance (one variable query);
- `gateway, inherited lookup`: the same by task (variable query, task, variable query);
- `gateway, id lookup`: the same by historic variable instance id (one GET of it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import processes
from tests.integration import engine_api

ROUNDS = 500
WARMUP = 200
CONTENT = bytes(range(256)) * 4
RESULTS = Path(__file__).resolve().parent / "results"
TABLE_NAMES = (
    "naïve café.txt",
    "Отчёт 2026 ✓.pdf",
    'say "hi".txt',
    "../../etc/passwd",
    "CON.txt",
    "line\nbreak.txt",
)


def _store(base_url: str, instance_id: str, variable: str, filename: str) -> None:
    body = {
        "type": "File",
        "value": base64.b64encode(CONTENT).decode(),
        "valueInfo": {"filename": filename, "mimeType": "text/plain"},
    }
    path = f"/process-instance/{instance_id}/variables/{variable}"
    engine_api.call(base_url, "PUT", path, json.dumps(body).encode())


def _raw_disposition(base_url: str, path: str) -> str | None:
    """The Content-Disposition exactly as sent: bytes outside ASCII shown as \\xNN."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Authorization: {engine_api.AUTHORIZATION}\r\nConnection: close\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    for line in received.split(b"\r\n\r\n")[0].split(b"\r\n"):
        field, _, value = line.partition(b":")
        if field.lower() == b"content-disposition":
            return value.strip().decode("ascii", errors="backslashreplace")
    return None


async def _get_ms(client: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with client.get(url) as response:
        assert response.status == 200, await response.text()
        assert await response.read() == CONTENT
    return (time.perf_counter() - started) * 1000


async def _measure(engine: str, gateway: str, paths: dict[str, str]) -> dict[str, dict[str, float]]:
    cases = {
        "direct": engine + paths["exact"],
        "gateway, name from the engine": gateway + paths["exact"],
        "gateway, scope lookup": gateway + paths["scope"],
        "gateway, inherited lookup": gateway + paths["inherited"],
        "gateway, id lookup": gateway + paths["id"],
    }
    samples: dict[str, list[float]] = {case: [] for case in cases}
    headers = {"Authorization": engine_api.AUTHORIZATION}
    async with aiohttp.ClientSession(headers=headers) as client:
        # Round robin, so the engine's JIT warming up and any drift hit every case alike.
        for index in range(WARMUP + ROUNDS):
            for case, url in cases.items():
                elapsed = await _get_ms(client, url)
                if index >= WARMUP:
                    samples[case].append(elapsed)
    figures = {}
    for case, values in samples.items():
        values.sort()
        figures[case] = {
            "median_ms": round(statistics.median(values), 2),
            "p95_ms": round(values[int(len(values) * 0.95)], 2),
        }
    return figures


def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-names-"))
    name = processes.engine_name()
    with (
        processes.engine(work_dir) as engine,
        processes.gateway(work_dir, engine.base_url) as gateway,
    ):
        engine_api.deploy(engine.base_url)
        instance_id, task_id = engine_api.start_instance(engine.base_url)
        table = []
        for index, filename in enumerate(TABLE_NAMES):
            _store(engine.base_url, instance_id, f"name{index}", filename)
            path = f"/engine-rest/process-instance/{instance_id}/variables/name{index}/data"
            table.append(
                {
                    "filename": filename,
                    "engine": _raw_disposition(engine.base_url, path),
                    "gateway": _raw_disposition(gateway.base_url, path),
                }
            )
        bytes_value = {"type": "Bytes", "value": base64.b64encode(CONTENT).decode()}
        path = f"/process-instance/{instance_id}/variables/scan_2026"
        engine_api.call(engine.base_url, "PUT", path, json.dumps(bytes_value).encode())
        table.append(
            {
                "filename": "a Bytes variable scan_2026",
                "engine": _raw_disposition(engine.base_url, f"/engine-rest{path}/data"),
                "gateway": _raw_disposition(gateway.base_url, f"/engine-rest{path}/data"),
            }
        )
        _store(engine.base_url, instance_id, "exact", "report.txt")
        _store(engine.base_url, instance_id, "dropped", "Отчёт.txt")
        [row] = engine_api.call(
            engine.base_url,
            "GET",
            f"/history/variable-instance?processInstanceId={instance_id}&variableName=dropped",
        )
        paths = {
            "exact": f"/engine-rest/process-instance/{instance_id}/variables/exact/data",
            "scope": f"/engine-rest/process-instance/{instance_id}/variables/dropped/data",
            "inherited": f"/engine-rest/task/{task_id}/variables/dropped/data",
            "id": f"/engine-rest/history/variable-instance/{row['id']}/data",
        }
        latency = asyncio.run(_measure(engine.base_url, gateway.base_url, paths))

    result = {"engine": name, "rounds": ROUNDS, "names": table, "latency": latency}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "download_names.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print("| stored name | the engine sends | the gateway sends |\n|---|---|---|")
    for entry in table:
        cells = [json.dumps(entry["filename"], ensure_ascii=False)]
        cells += [
            f"`{entry[side]}`" if entry[side] else "*(no header)*" for side in ("engine", "gateway")
        ]
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    print("\n| case | median ms | p95 ms |\n|---|---|---|")
    for case, figures in latency.items():
        print(f"| {case} | {figures['median_ms']} | {figures['p95_ms']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
