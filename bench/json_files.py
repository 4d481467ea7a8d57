"""What a file in a JSON body costs: a 14 MB File value, base64 in JSON as external task
workers and Tasklist send it, sent direct, through tuned nginx, through the gateway (which
finds and decodes the value as it streams) and through the gateway scanning it with clamd;
throughput, gateway CPU per GB of JSON, and the gateway's peak RSS above idle.

    make bench-json        # or: .venv/bin/python bench/json_files.py

Two upstreams, side by side in one run:
- the STUB UPSTREAM's sink (aiohttp, not an engine) at an external task's `…/complete`: it
  reads the body and answers 204, so the gateway's own cost shows;
- the real engine on H2, `PUT /process-instance/{id}/variables/{name}`: it parses the
  JSON, decodes the base64 and stores the file.
The body is written once to a file (random bytes: clamd's work depends on the content) and
sent by curl, once to every path to warm up, then ROUNDS times each; a cell is the median.
Debian's clamd runs with the project's two test signatures (deploy/clamd). Writes
bench/results/json_files.json.
"""

from __future__ import annotations

import base64
import json
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import compare, proc
from tests import processes
from tests.integration import engine_api

ROUNDS = 5
MB = 1_000_000
FILE_BYTES = 14 * MB
STUB_DOOR = "/engine-rest/external-task/bench/complete"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Cell:
    upstream: str
    path: str  # direct, nginx-tuned, gateway, gateway+clamd
    body_bytes: int
    mb_per_second: float  # of the JSON body
    seconds: list[float]
    cpu_seconds_per_gb: float | None  # the proxy's (nginx's or the gateway's)
    peak_above_idle_mib: float | None


def json_body(directory: Path) -> Path:
    """A worker's completion with one File variable of FILE_BYTES random bytes."""
    content = b"".join(engine_api.pseudo_random_chunks(FILE_BYTES, seed=14))
    value = {
        "type": "File",
        "value": base64.b64encode(content).decode(),
        "valueInfo": {"filename": "report.pdf", "mimeType": "application/pdf"},
    }
    path = directory / "completion.json"
    path.write_text(json.dumps({"workerId": "bench", "variables": {"report": value}}))
    return path


def variable_body(directory: Path, completion: Path) -> Path:
    """The same File value, as the body of a PUT of one variable."""
    path = directory / "variable.json"
    path.write_text(json.dumps(json.loads(completion.read_text())["variables"]["report"]))
    return path


def _send(method: str, url: str, body: Path, auth: list[str]) -> float:
    arguments = ["-o", "/dev/null", "-X", method, "-T", str(body), "-H", "Expect:"]
    arguments += ["-H", "Content-Type: application/json", *auth, url]
    return compare._curl(arguments)


def measure(
    upstream: str,
    method: str,
    url_of: dict[str, str],
    pids: dict[str, int | None],
    body: Path,
    auth: list[str],
) -> list[Cell]:
    cells = []
    size = body.stat().st_size
    for url in url_of.values():
        _send(method, url, body, auth)  # warm-up: the engine's JIT, every path's connections
    for path, url in url_of.items():
        pid = pids[path]
        watched = [] if pid is None else processes.with_children(pid)
        idle = {p: proc.reset_peak(p) for p in watched}
        cpu_before = proc.cpu_seconds(watched)
        seconds = [_send(method, url, body, auth) for _ in range(ROUNDS)]
        cpu = proc.cpu_seconds(watched) - cpu_before
        peak = max((proc.kib(p, "VmHWM") - idle[p] for p in watched), default=None)
        cells.append(
            Cell(
                upstream,
                path,
                size,
                round(size / MB / statistics.median(seconds), 1),
                [round(s, 3) for s in seconds],
                None if pid is None else round(cpu / (size * ROUNDS / 1e9), 2),
                None if peak is None else round(peak / 1024, 1),
            )
        )
        print(asdict(cells[-1]), flush=True)
    return cells


def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-json-"))
    completion = json_body(work_dir)
    variable = variable_body(work_dir, completion)
    cells: list[Cell] = []
    with processes.clamd(work_dir) as clamd:
        with processes.stub_upstream() as stub_url:
            cells += _run("stub", "POST", stub_url, STUB_DOOR, completion, clamd, work_dir, [])
        with processes.engine(work_dir) as engine:
            engine_api.deploy(engine.base_url)
            instance_id, _ = engine_api.start_instance(engine.base_url)
            door = f"/engine-rest/process-instance/{instance_id}/variables/report"
            auth = ["-H", f"Authorization: {engine_api.AUTHORIZATION}"]
            cells += _run("engine", "PUT", engine.base_url, door, variable, clamd, work_dir, auth)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "json_files.json").write_text(
        json.dumps(
            {"file_bytes": FILE_BYTES, "rounds": ROUNDS, "cells": [asdict(c) for c in cells]},
            indent=2,
        )
        + "\n"
    )
    return 0


def _run(
    upstream: str,
    method: str,
    upstream_url: str,
    door: str,
    body: Path,
    clamd: processes.Clamd,
    work_dir: Path,
    auth: list[str],
) -> list[Cell]:
    address = upstream_url.removeprefix("http://")
    for name in ("plain", "scanning"):
        (work_dir / name).mkdir(exist_ok=True)
    with (
        processes.gateway(work_dir / "plain", upstream_url) as gateway,
        processes.gateway(
            work_dir / "scanning", upstream_url, "--clamd", clamd.tcp_url
        ) as scanning,
        processes.nginx(work_dir / "nginx", address, site=compare.nginx_tuned_site) as nginx,
    ):
        urls = {
            "direct": upstream_url + door,
            "nginx-tuned": nginx.base_url + door,
            "gateway": gateway.base_url + door,
            "gateway+clamd": scanning.base_url + door,
        }
        pids = {
            "direct": None,
            "nginx-tuned": nginx.running.pid,
            "gateway": gateway.running.pid,
            "gateway+clamd": scanning.running.pid,
        }
        return measure(upstream, method, urls, pids, body, auth)


if __name__ == "__main__":
    sys.exit(main())
