"""The real-engine cases of `make bench` (bench/compare.py), in ROUNDS rounds so each ratio
comes with its spread: direct, tuned nginx (deploy/nginx: buffering off, 1 MiB buffers)
and the gateway, side by side in front of the same REAL ENGINE (Operaton or Camunda 7 on
H2, as `ENGINE` says).

Per round and path:
- a 200 MB Bytes variable downloaded with curl DOWNLOADS times (the engine sends it
  chunked, 8 KiB chunks): the median wall time, and the proxy's CPU seconds per GB, in
  all and as user and system time;
- wrk for CALL_SECONDS on `GET /engine` and on `GET /task?maxResults=20` (TASKS open user
  tasks) at 32 connections: requests per second;
- the same two calls at one connection: p50, and what the proxy adds to direct's p50.

Beside them, for the two calls only, FLOOR (bench/aiohttp_floor.py, a measuring
instrument): aiohttp's low-level server and the gateway's relay with nothing else, the
least an aiohttp gateway pays for a small call, so the goals can be read against it.

    .venv/bin/python bench/engine_cases.py   # alone: bench/results/engine_cases.json
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import compare, proc
from tests import processes
from tests.integration import engine_api

ROUNDS = 3
DOWNLOAD_BYTES = 200_000_000
DOWNLOADS = 5
TASKS = 40
CALL_SECONDS = 5
CALLS = {"engine": "/engine-rest/engine", "task query": "/engine-rest/task?maxResults=20"}
# The levers, measured on the same engine in the same rounds: the gateway's defaults but one.
FLOOR = "aiohttp floor"
VARIANTS: dict[str, tuple[str, ...]] = {
    "gateway --event-loop uvloop": ("--event-loop", "uvloop"),
    "gateway --workers 2": ("--workers", "2"),
    "gateway --relay off": ("--relay", "off"),
}


def _download_variable(base_url: str, work_dir: Path, size: int) -> str:
    """A Bytes variable of `size`, uploaded straight to the engine: its download path."""
    instance_id, task_id = engine_api.start_instance(base_url)
    body = compare.upload_body(work_dir, size)
    auth = ["-H", f"Authorization: {engine_api.AUTHORIZATION}"]
    upload_url = f"{base_url}/engine-rest/task/{task_id}/variables/doc/data"
    subprocess.run(["curl", "-s", *auth, *compare._uploads(upload_url, body, 1)], check=True)
    return f"/engine-rest/process-instance/{instance_id}/variables/doc/data"


def _download(route: compare.Route, path: str, size: int) -> dict[str, float | None]:
    auth = ["-H", f"Authorization: {engine_api.AUTHORIZATION}"]
    pids = compare._proxy_pids(route)
    before = proc.cpu_split(pids)
    url = route.base_url + path
    walls = [compare._curl([*auth, "-o", "/dev/null", url]) for _ in range(DOWNLOADS)]
    after = proc.cpu_split(pids)
    gigabytes = DOWNLOADS * size / 1e9
    user, system = ((a - b) / gigabytes for a, b in zip(after, before, strict=True))
    return {
        "wall_seconds": round(statistics.median(walls), 3),
        "cpu_s_per_gb": round(user + system, 3) if pids else None,
        # Apart, because the kernel's copies and Python's calls per piece are different
        # levers (docs/performance.md: the page-aligned buffer).
        "user_s_per_gb": round(user, 3) if pids else None,
        "system_s_per_gb": round(system, 3) if pids else None,
    }


@contextlib.contextmanager
def _floor(work_dir: Path, engine_url: str) -> Iterator[compare.Route]:
    host, port = engine_url.removeprefix("http://").rsplit(":", 1)
    listens = processes.free_port()
    script = Path(__file__).resolve().parent / "aiohttp_floor.py"
    with (work_dir / "floor.log").open("ab") as log:
        started = subprocess.Popen(
            [sys.executable, str(script), str(listens), host, port], stdout=log, stderr=log
        )
    try:
        processes.wait_until(
            lambda: processes.accepts_connections(listens), timeout_seconds=30, what=FLOOR
        )
        yield compare.Route(FLOOR, f"http://{processes.LOOPBACK}:{listens}", started.pid)
    finally:
        processes.stop(started)


def run(
    work_dir: Path,
    engine: processes.Running,
    *,
    rounds: int = ROUNDS,
    call_seconds: int = CALL_SECONDS,
    download_bytes: int = DOWNLOAD_BYTES,
    variants: dict[str, tuple[str, ...]] = VARIANTS,
) -> dict[str, Any]:
    """The cases in front of `engine` (deployed to already): paths started here."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as running:
        gateway = running.enter_context(processes.gateway(work_dir, engine.base_url))
        engine_address = engine.base_url.removeprefix("http://")
        site = compare.nginx_tuned_site
        tuned = running.enter_context(
            processes.nginx(work_dir / "tuned", engine_address, site=site)
        )
        routes = {
            "direct": compare.Route("direct", engine.base_url, None),
            "nginx-tuned": compare.Route("nginx-tuned", tuned.base_url, tuned.running.pid),
            "gateway": compare.Route("gateway", gateway.base_url, gateway.running.pid),
        }
        for number, (name, flags) in enumerate(variants.items()):
            variant_dir = work_dir / f"variant{number}"
            variant_dir.mkdir()
            started = running.enter_context(processes.gateway(variant_dir, engine.base_url, *flags))
            routes[name] = compare.Route(name, started.base_url, started.running.pid)
        routes[FLOOR] = running.enter_context(_floor(work_dir, engine.base_url))
        for _ in range(TASKS):
            engine_api.start_instance(engine.base_url)
        path = _download_variable(engine.base_url, work_dir, download_bytes)
        for route in routes.values():  # warm-up: the engine's JIT, every connection pool
            if route.name != FLOOR:
                _download(route, path, download_bytes)
            for target in CALLS.values():
                compare._wrk(route.base_url + target, 32, call_seconds)
        measured = []
        for number in range(rounds):
            for name, route in routes.items():
                case: dict[str, Any] = {"round": number, "path": name}
                if name != FLOOR:  # small calls only
                    case["download"] = _download(route, path, download_bytes)
                for call, target in CALLS.items():
                    case[call] = {
                        "32": compare._wrk(route.base_url + target, 32, call_seconds),
                        "1": compare._wrk(route.base_url + target, 1, call_seconds),
                    }
                measured.append(case)
                print(json.dumps(case), flush=True)
    return {
        "engine": processes.engine_name(),
        "download_bytes": download_bytes,
        "downloads_per_round": DOWNLOADS,
        "call_seconds": call_seconds,
        "rounds": measured,
        "ratios": ratios(measured),
    }


def ratios(measured: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each goal's ratio for each gateway, per round: {"gateway: name": {min, median, max}}."""
    per_round: dict[str, list[float]] = {}
    for number in sorted({case["round"] for case in measured}):
        got = {case["path"]: case for case in measured if case["round"] == number}
        direct, nginx = got["direct"], got["nginx-tuned"]
        for path, case in got.items():
            if path in ("direct", "nginx-tuned"):
                continue
            found: dict[str, float | None] = {}
            if "download" in case:
                wall, cpu = case["download"]["wall_seconds"], case["download"]["cpu_s_per_gb"]
                found = {
                    "download wall vs direct": _over(wall, direct["download"]["wall_seconds"]),
                    "download wall vs nginx": _over(wall, nginx["download"]["wall_seconds"]),
                    "download CPU vs nginx": _over(cpu, nginx["download"]["cpu_s_per_gb"]),
                }
            for call in CALLS:
                found[f"{call} req/s at 32 vs nginx"] = _over(
                    case[call]["32"]["requests_per_s"], nginx[call]["32"]["requests_per_s"]
                )
                found[f"{call} p50 added at 1 (ms)"] = (
                    case[call]["1"]["p50_ms"] - direct[call]["1"]["p50_ms"]
                )
            for name, value in found.items():
                if value is not None:  # tiny sizes (--smoke) measure no CPU at all
                    per_round.setdefault(f"{path}: {name}", []).append(value)
    return {name: spread(values) for name, values in per_round.items()}


def spread(values: list[float]) -> dict[str, float]:
    """A measure over its rounds: the median, with the lowest and the highest."""
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def _over(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-engine-cases-"))
    with processes.engine(work_dir) as engine:
        engine_api.deploy(engine.base_url)
        cases = run(work_dir, engine)
    result = {"machine": compare.machine(), "gateway": compare.gateway_settings(), **cases}
    compare.RESULTS.mkdir(exist_ok=True)
    (compare.RESULTS / "engine_cases.json").write_text(json.dumps(result, indent=1) + "\n")
    for name, spread in result["ratios"].items():
        print(f"{name}: {spread['median']} ({spread['min']} to {spread['max']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
