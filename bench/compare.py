"""`make bench`: the gateway side by side with the upstream alone and with nginx, every case
in one run on one machine, so that ratios compare like with like.

Upstreams:
- the STUB UPSTREAM (tests/faults/stub_upstream.py, aiohttp, not an engine): downloads are
  files it sends by sendfile, as nginx serves a file; uploads go to a sink that reads the
  whole body before it answers (nginx's `return 204` answers before reading the body, so
  it cannot be a fair sink);
- the real engine (Operaton on H2), for 100 MB and for small JSON calls.

The engine's figures are the median of 3 round trips per path, after one warm-up round trip
and one wrk run per path.

Paths: `direct` (the upstream alone), `gateway`, `nginx-default` (`proxy_pass` and nothing
else: buffering on both ways), `nginx-tuned` (the shipped deploy/nginx/engine-gateway.conf:
no buffering, HTTP/1.1 keep-alive, 1 MiB buffer), `nginx+gateway` (the shipped nginx in
front of the gateway). Both nginx run one worker, as the gateway is one process; size
limits are off for the benchmark.

Clients: curl (one process; `--parallel` for concurrency) for bodies, uploads sent with
`-T` as a ready-made multipart form; wrk for JSON latency. `client_alone` measures curl
against the direct path, to show the client is not the limit.

Outputs: bench/results/compare.json and docs/compare.png; `bench/report.py` writes
docs/performance.md's tables from the JSON.

    .venv/bin/python bench/compare.py            # the full run (under 15 minutes here)
    .venv/bin/python bench/compare.py --smoke DIR  # tiny sizes, results into DIR (tests)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import engine_cases, proc
from tests import processes
from tests.integration import engine_api

MIB = 1 << 20
GIB = 1 << 30
RESULTS = Path(__file__).resolve().parent / "results"
CHART = Path(__file__).resolve().parent.parent / "docs" / "compare.png"
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"
DOWNLOAD = "/engine-rest/process-instance/file/variables/{name}/data"
UPLOAD = "/engine-rest/task/bench/variables/doc/data"
JSON_CALLS = {
    "engine": "/engine-rest/engine",
    "process-definition": "/engine-rest/process-definition?latestVersion=true",
}
PATHS = ("direct", "gateway", "nginx-default", "nginx-tuned", "nginx+gateway")


@dataclass(frozen=True)
class Plan:
    # (size, concurrency) per direction; 1 GiB x 100 would be 100 GiB a cell: left out.
    cells: tuple[tuple[int, int], ...]
    once: tuple[int, int] | None  # the 4 GiB stream, gateway and direct only
    engine_bytes: int
    wrk_seconds: int
    json_concurrency: tuple[int, ...]
    engine_cases: dict[str, Any]  # bench/engine_cases.py's run, its sizes and rounds


FULL = Plan(
    cells=(
        (MIB, 1), (MIB, 10), (MIB, 100),
        (100 * MIB, 1), (100 * MIB, 10), (100 * MIB, 100),
        (GIB, 1), (GIB, 10),
    ),
    once=(4 * GIB, 1),
    engine_bytes=100_000_000,
    wrk_seconds=5,
    json_concurrency=(1, 50),
    engine_cases={},  # its defaults: 3 rounds, 200 MB
)  # fmt: skip
SMOKE = Plan(
    cells=((64 * 1024, 1), (64 * 1024, 2)),
    once=None,
    engine_bytes=100_000,
    wrk_seconds=1,
    json_concurrency=(1, 2),
    engine_cases={"rounds": 1, "call_seconds": 1, "download_bytes": 100_000, "variants": {}},
)


@dataclass(frozen=True)
class Route:
    name: str
    base_url: str
    pid: int | None  # the proxy process measured (nginx: with its workers)


@dataclass(frozen=True)
class Result:
    path: str
    direction: str
    size: int
    concurrency: int
    mb_s: float
    proxy_cpu_s_per_gb: float | None
    proxy_peak_rss_mib: float | None


def _proxy_pids(route: Route) -> list[int]:
    return [] if route.pid is None else processes.with_children(route.pid)


def _curl(arguments: list[str]) -> float:
    started = time.monotonic()
    # curl draws a progress meter in --parallel mode whatever -s says: keep it out of sight.
    ran = subprocess.run(["curl", "--fail", "-sS", *arguments], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if ran.returncode != 0:
        raise RuntimeError(f"curl failed ({ran.returncode}): {ran.stderr[-2000:]}")
    return seconds


def _downloads(url: str, concurrency: int) -> list[str]:
    per = ["-o", "/dev/null", url]
    return (["-Z", "--parallel-max", str(concurrency)] if concurrency > 1 else []) + [
        part for _ in range(concurrency) for part in per
    ]


def _uploads(url: str, body: Path, concurrency: int) -> list[str]:
    per = [
        "-sS", "--fail", "-o", "/dev/null", "-X", "POST", "-T", str(body),
        "-H", f"Content-Type: multipart/form-data; boundary={BOUNDARY}", url,
    ]  # fmt: skip
    arguments = ["-Z", "--parallel-max", str(concurrency)] if concurrency > 1 else []
    for index in range(concurrency):
        arguments += (["--next"] if index else []) + per
    return arguments


def upload_body(directory: Path, size: int) -> Path:
    """The engine's multipart form around `size` zero bytes, as a sparse file (read once,
    as make_files does)."""
    path = directory / f"form-{size}"
    if not path.exists():
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="valueType"\r\n\r\nBytes'
            f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="data"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        with path.open("wb") as form:
            form.write(head)
            form.truncate(len(head) + size)
            form.seek(len(head) + size)
            form.write(f"\r\n--{BOUNDARY}--\r\n".encode())
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    return path


def measure(route: Route, direction: str, size: int, concurrency: int, files: Path) -> Result:
    pids = _proxy_pids(route)
    for pid in pids:
        proc.reset_peak(pid)
    cpu_before = proc.cpu_seconds(pids)
    if direction == "download":
        url = route.base_url + DOWNLOAD.format(name=f"s{size}")
        seconds = _curl(_downloads(url, concurrency))
    else:
        seconds = _curl(_uploads(route.base_url + UPLOAD, upload_body(files, size), concurrency))
    moved = size * concurrency
    cpu = proc.cpu_seconds(pids) - cpu_before if pids else None
    peak = sum(proc.kib(pid, "VmHWM") for pid in pids) / 1024 if pids else None
    return Result(
        route.name,
        direction,
        size,
        concurrency,
        round(moved / 1e6 / seconds, 1),
        None if cpu is None else round(cpu / (moved / 1e9), 3),
        None if peak is None else round(peak, 1),
    )


def nginx_default_site(upstream: str, port: int) -> str:
    return (
        f"upstream bench_upstream {{ server {upstream}; }}\n"
        f"server {{\n    listen {processes.LOOPBACK}:{port};\n    client_max_body_size 0;\n"
        "    location / { proxy_pass http://bench_upstream; }\n}\n"
    )


def nginx_tuned_site(upstream: str, port: int) -> str:
    site = processes.nginx_site(upstream, port)
    unlimited = site.replace("client_max_body_size 1g;", "client_max_body_size 0;")
    assert unlimited != site
    return unlimited


@contextlib.contextmanager
def stub_routes(work_dir: Path, files: Path) -> Iterator[dict[str, Route]]:
    """Every path in front of the stub upstream serving `files`."""
    with (
        processes.stub_upstream(files) as stub_url,
        processes.gateway(work_dir, stub_url, "--max-upload-bytes", "0") as gateway,
    ):
        stub_address = stub_url.removeprefix("http://")
        gateway_address = gateway.base_url.removeprefix("http://")
        with (
            processes.nginx(work_dir / "default", stub_address, site=nginx_default_site) as plain,
            processes.nginx(work_dir / "tuned", stub_address, site=nginx_tuned_site) as tuned,
            processes.nginx(work_dir / "front", gateway_address, site=nginx_tuned_site) as front,
        ):
            yield {
                "direct": Route("direct", stub_url, None),
                "gateway": Route("gateway", gateway.base_url, gateway.running.pid),
                "nginx-default": Route("nginx-default", plain.base_url, plain.running.pid),
                "nginx-tuned": Route("nginx-tuned", tuned.base_url, tuned.running.pid),
                "nginx+gateway": Route("nginx+gateway", front.base_url, front.running.pid),
            }


def make_files(directory: Path, plan: Plan) -> None:
    """Sparse files of every size, read once so that no path pays for a cold page cache
    (the first read of a 1 GiB file ran at a fifth of the speed of the next)."""
    sizes = {size for size, _ in plan.cells} | ({plan.once[0]} if plan.once else set())
    for size in sizes:
        path = directory / f"s{size}"
        with path.open("wb") as sparse:
            sparse.truncate(size)
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)


def run_stub(plan: Plan, work_dir: Path) -> dict[str, object]:
    files = work_dir / "files"
    files.mkdir()
    make_files(files, plan)
    results: list[Result] = []
    with stub_routes(work_dir, files) as routes:
        for direction in ("download", "upload"):
            for size, concurrency in plan.cells:
                for path in PATHS:
                    results.append(measure(routes[path], direction, size, concurrency, files))
                    print(asdict(results[-1]), flush=True)
            if plan.once:
                size, concurrency = plan.once
                for path in ("direct", "gateway", "nginx-tuned"):
                    results.append(measure(routes[path], direction, size, concurrency, files))
                    print(asdict(results[-1]), flush=True)
    return {"cases": [asdict(r) for r in results]}


def _wrk(url: str, concurrency: int, seconds: int) -> dict[str, float]:
    threads = min(concurrency, 2)
    shown = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--latency",
         "-H", f"Authorization: {engine_api.AUTHORIZATION}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Non-2xx" not in shown, shown
    latencies = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", shown, re.MULTILINE))
    requests = float(re.search(r"Requests/sec:\s+(\S+)", shown).group(1))  # type: ignore[union-attr]
    return {
        "p50_ms": _ms(latencies["50"]),
        "p99_ms": _ms(latencies["99"]),
        "requests_per_s": round(requests, 1),
    }


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 3)


def run_engine(plan: Plan, work_dir: Path) -> dict[str, object]:
    with (
        processes.engine(work_dir) as engine,
        processes.gateway(work_dir, engine.base_url) as gateway,
    ):
        engine_address = engine.base_url.removeprefix("http://")
        gateway_address = gateway.base_url.removeprefix("http://")
        with (
            processes.nginx(work_dir / "tuned", engine_address, site=nginx_tuned_site) as tuned,
            processes.nginx(work_dir / "front", gateway_address, site=nginx_tuned_site) as front,
        ):
            routes = {
                "direct": Route("direct", engine.base_url, None),
                "gateway": Route("gateway", gateway.base_url, gateway.running.pid),
                "nginx-tuned": Route("nginx-tuned", tuned.base_url, tuned.running.pid),
                "nginx+gateway": Route("nginx+gateway", front.base_url, front.running.pid),
            }
            engine_api.deploy(engine.base_url)
            for route in routes.values():  # warm-up: the engine's JIT, every connection pool
                _engine_round_trip(route, engine, plan)
                for target in JSON_CALLS.values():
                    _wrk(route.base_url + target, 1, plan.wrk_seconds)
            transfers = [
                _median_round_trip([_engine_round_trip(route, engine, plan) for _ in range(3)])
                for route in routes.values()
            ]
            calls = [
                {"path": name, "call": call, "concurrency": concurrency,
                 **_wrk(route.base_url + target, concurrency, plan.wrk_seconds)}
                for call, target in JSON_CALLS.items()
                for concurrency in plan.json_concurrency
                for name, route in routes.items()
            ]  # fmt: skip
        cases = engine_cases.run(work_dir / "cases", engine, **plan.engine_cases)
    return {
        "engine": processes.engine_name(),
        "transfers": transfers,
        "json": calls,
        "cases": cases,
    }


def _median_round_trip(runs: list[dict[str, object]]) -> dict[str, object]:
    median = dict(runs[0])
    for key in ("upload_seconds", "download_seconds"):
        median[key] = sorted(float(str(run[key])) for run in runs)[len(runs) // 2]
    median["runs"] = len(runs)
    return median


def _engine_round_trip(route: Route, engine: processes.Running, plan: Plan) -> dict[str, object]:
    """One File variable of plan.engine_bytes up (a ready-made form, curl -T) and down."""
    instance_id, task_id = engine_api.start_instance(engine.base_url)
    with tempfile.TemporaryDirectory() as scratch:
        body = upload_body(Path(scratch), plan.engine_bytes)
        auth = ["-H", f"Authorization: {engine_api.AUTHORIZATION}"]
        url = f"{route.base_url}/engine-rest/task/{task_id}/variables/doc/data"
        up = _curl([*auth, *_uploads(url, body, 1)])
        path = f"/engine-rest/process-instance/{instance_id}/variables/doc/data"
        down = _curl([*auth, "-o", "/dev/null", route.base_url + path])
    return {
        "path": route.name,
        "bytes": plan.engine_bytes,
        "upload_seconds": round(up, 3),
        "download_seconds": round(down, 3),
    }


def client_alone(plan: Plan, work_dir: Path) -> dict[str, float]:
    """curl against the stub directly, biggest single cell: the client's own ceiling."""
    size = max(size for size, concurrency in plan.cells if concurrency == 1)
    files = work_dir / "alone"
    files.mkdir()
    make_files(files, Plan(((size, 1),), None, 0, 0, (), {}))
    with processes.stub_upstream(files) as stub_url:
        route = Route("direct", stub_url, None)
        down = measure(route, "download", size, 1, files)
        up = measure(route, "upload", size, 1, files)
    return {"size": size, "download_mb_s": down.mb_s, "upload_mb_s": up.mb_s}


def machine() -> dict[str, object]:
    model = next(
        (line.split(":", 1)[1].strip()
         for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown",
    )  # fmt: skip
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB),
        "os": platform.platform(),
        "python": platform.python_version(),
        "nginx": nginx.removeprefix("nginx version: "),
        "curl": curl.split()[1],
    }


def gateway_settings() -> dict[str, str]:
    """The gateway as the benchmark runs it: its defaults."""
    from gateway.__main__ import parse_config

    config = parse_config([], {})
    return {"event_loop": config.event_loop, "splice": config.splice}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", type=Path, help="tiny sizes; results into this directory")
    arguments = parser.parse_args(argv)
    plan = SMOKE if arguments.smoke else FULL
    out_dir: Path = arguments.smoke or RESULTS
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    for part in ("stub", "engine"):
        (work_dir / part).mkdir()
    result: dict[str, object] = {"machine": machine(), "gateway": gateway_settings()}
    result["client_alone"] = client_alone(plan, work_dir)
    result["stub"] = run_stub(plan, work_dir / "stub")
    result["real_engine"] = run_engine(plan, work_dir / "engine")
    result["wall_seconds"] = round(time.monotonic() - started)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compare.json").write_text(json.dumps(result, indent=1) + "\n")
    from bench import report  # matplotlib only once there is something to draw

    report.chart(result, CHART if not arguments.smoke else out_dir / "compare.png")
    print(f"done in {result['wall_seconds']} s: {out_dir / 'compare.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
