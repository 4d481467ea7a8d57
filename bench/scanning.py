"""What inspecting uploads costs: upload throughput with digests off, digests on (the stored
content's sha-256, the default), a claimed Repr-Digest verified, and clamd scanning, beside
the engine (or stub) reached directly; gateway CPU per GB and peak memory for each.

    make bench-scanning        # or: .venv/bin/python bench/scanning.py

1 GiB and 100 MB uploads go to the STUB UPSTREAM's sink (fast, not an engine), 100 MB ones
also to the real engine on H2. The bodies are the engine's variable form around random bytes
(clamd's work depends on the content; zeros would flatter it), sent by curl from a file.
Each cell is the median of ROUNDS. Debian's clamd runs with the project's two test
signatures (deploy/clamd): a production database of millions of signatures scans slower.
Writes bench/results/scanning.json.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import statistics
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import compare, proc
from tests import processes
from tests.integration import engine_api

ROUNDS = 3
MB = 1_000_000
GIB = 1 << 30
BOUNDARY = "bench-scanning-boundary"
STUB_UPLOAD = "/engine-rest/task/bench/variables/doc/data"
RESULTS = Path(__file__).resolve().parent / "results"

# name → (gateway arguments, whether the client claims Repr-Digest); None: no gateway.
MODES: dict[str, tuple[tuple[str, ...], bool] | None] = {
    "direct": None,
    "gateway, digests off": (("--digests", "off"), False),
    "gateway, digests on": ((), False),
    "gateway, Repr-Digest verified": ((), True),
    "gateway, clamd": (("--clamd", "{clamd}"), False),
}


@dataclass(frozen=True)
class Cell:
    upstream: str
    size_bytes: int
    mode: str
    mb_per_second: float
    seconds: list[float]
    gateway_cpu_seconds_per_gb: float | None
    gateway_peak_above_idle_mib: float | None
    clamd_scan_seconds: float | None  # mean, from the gateway's histogram


def form_file(directory: Path, size: int) -> tuple[Path, str]:
    """The engine's variable form around `size` random bytes, and the data's Repr-Digest."""
    path = directory / f"form-{size}"
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="valueType"\r\n\r\nBytes'
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="data"; filename="b.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    digest = hashlib.sha256()
    with path.open("wb") as form:
        form.write(head)
        for chunk in engine_api.pseudo_random_chunks(size, seed=size):
            digest.update(chunk)
            form.write(chunk)
        form.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    return path, f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"


def curl_upload(url: str, body: Path, headers: list[str]) -> float:
    arguments = ["-o", "/dev/null", "-X", "POST", "-T", str(body), "-H", "Expect:"]
    arguments += ["-H", f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    for header in headers:
        arguments += ["-H", header]
    return compare._curl([*arguments, url])


def scan_seconds_mean(admin_url: str) -> float | None:
    with urllib.request.urlopen(admin_url + "/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    found = {
        name: float(value)
        for name, value in re.findall(
            r'^engine_gateway_scan_duration_seconds_(sum|count)\{direction="upload"\} (\S+)$',
            text,
            re.MULTILINE,
        )
    }
    return found["sum"] / found["count"] if found.get("count") else None


def measure(
    upstream_name: str,
    upstream_url: str,
    path: str,
    size: int,
    body: tuple[Path, str],
    clamd_url: str,
    work_dir: Path,
    auth: list[str],
) -> list[Cell]:
    cells = []
    for mode, setup in MODES.items():
        if setup is None:
            seconds = [curl_upload(upstream_url + path, body[0], auth) for _ in range(ROUNDS)]
            cells.append(
                Cell(upstream_name, size, mode, _rate(size, seconds), seconds, None, None, None)
            )
            print(cells[-1], flush=True)
            continue
        arguments, claims = setup
        arguments = tuple(a.replace("{clamd}", clamd_url) for a in arguments)
        headers = [*auth, f"Repr-Digest: {body[1]}"] if claims else auth
        with processes.gateway(
            work_dir, upstream_url, "--max-upload-bytes", "0", *arguments
        ) as gateway:
            pid = gateway.running.pid
            idle_kib = proc.reset_peak(pid)
            cpu_before = proc.cpu_seconds([pid])
            seconds = [
                curl_upload(gateway.base_url + path, body[0], headers) for _ in range(ROUNDS)
            ]
            cpu = proc.cpu_seconds([pid]) - cpu_before
            peak_kib = proc.kib(pid, "VmHWM")
            scan = scan_seconds_mean(gateway.admin_url)
        cells.append(
            Cell(
                upstream_name,
                size,
                mode,
                _rate(size, seconds),
                [round(s, 3) for s in seconds],
                round(cpu / (size * ROUNDS / 1e9), 3),
                round((peak_kib - idle_kib) / 1024, 1),
                None if scan is None else round(scan, 3),
            )
        )
        print(cells[-1], flush=True)
    return cells


def _rate(size: int, seconds: list[float]) -> float:
    return round(size / MB / statistics.median(seconds), 1)


def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-scanning-"))
    bodies = {size: form_file(work_dir, size) for size in (100 * MB, GIB)}
    cells: list[Cell] = []
    with processes.clamd(work_dir) as clamd:
        with processes.stub_upstream() as stub_url:
            for size in (100 * MB, GIB):
                cells += measure(
                    "stub", stub_url, STUB_UPLOAD, size, bodies[size], clamd.tcp_url, work_dir, []
                )
        with processes.engine(work_dir) as engine:
            engine_api.deploy(engine.base_url)
            _, task_id = engine_api.start_instance(engine.base_url)
            path = f"/engine-rest/task/{task_id}/variables/doc/data"
            auth = [f"Authorization: {engine_api.AUTHORIZATION}"]
            cells += measure(
                "engine", engine.base_url, path, 100 * MB, bodies[100 * MB], clamd.tcp_url,
                work_dir, auth,
            )  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scanning.json").write_text(
        json.dumps(
            {
                "engine": processes.engine_name(),
                "rounds": ROUNDS,
                "cells": [asdict(c) for c in cells],
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
