"""The document store, measured side by side in one run (bench/results/documents.json).

    make bench-documents        # or: .venv/bin/python bench/documents.py [--smoke]

1. **What the engine holds.** A File of 100, 300, 500 and 700 MB uploaded by multipart
   through the gateway to the real engine (1 GiB heap, H2), then downloaded: without a
   store, with the file store and with SeaweedFS. For each: the upload's status, the
   download's status and whether it is identical, the engine database's growth and the
   engine's peak RSS. Each case has an engine of its own (an OutOfMemoryError can leave
   one unwell).
2. **1 GiB up and down, five ways**, three rounds, medians: through the gateway without a
   store (up to where the engine fails), into the file store, into SeaweedFS; SeaweedFS
   direct (curl, signing with SigV4); and the disk alone (`cp` of the file into the
   store's directory and `fsync`, then `cat` of it back). curl is the client of every
   path. Reported: MB/s, the gateway's CPU per GB and peak RSS, the engine's peak RSS and
   its database's growth.
3. **Memory**: 4 GiB up and down through the gateway into each store, the gateway's RSS
   growth (the goal: at most 64 MiB).

The machine's cores are shared by curl, the gateway, the engine and SeaweedFS.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import proc
from bench.compare import machine
from tests import processes
from tests.integration import engine_api
from tests.integration.documents import key_file, new_key

RESULTS = Path(__file__).resolve().parent / "results"
MB, GIB = 1_000_000, 1 << 30
ENGINE_SIZES = (100 * MB, 300 * MB, 500 * MB, 700 * MB)
STORES = ("none", "file", "s3")


@dataclass
class Stack:
    engine: processes.Running
    gateway: processes.Gateway
    store_dir: Path | None
    seaweed: processes.SeaweedFS | None
    work: Path

    @property
    def engine_data(self) -> Path:
        return next(self.work.glob("engine-data-*"))


@contextmanager
def stack(work: Path, store: str, *gateway_args: str) -> Iterator[Stack]:
    work.mkdir(parents=True)
    with ExitStack() as stacked:
        engine = stacked.enter_context(processes.engine(work))
        args: list[str] = list(gateway_args)
        env: dict[str, str] = {}
        seaweed = store_dir = None
        if store != "none":
            args += ["--document-key-file", str(key_file(work, new_key()))]
        if store == "file":
            store_dir = work / "documents"
            args += ["--document-store", f"file://{store_dir}"]
        elif store == "s3":
            seaweed = stacked.enter_context(processes.seaweedfs(work))
            seaweed.create_bucket("documents")
            args += ["--document-store", "s3://documents", "--document-store-endpoint", seaweed.url]
            env = seaweed.credentials
        gateway = stacked.enter_context(
            processes.gateway(work, engine.base_url, "--max-upload-bytes", "0", *args, env=env)
        )
        engine_api.deploy(engine.base_url)
        yield Stack(engine, gateway, store_dir, seaweed, work)


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def curl(
    *args: str, output: str = "/dev/null", user: str | None = "demo:demo"
) -> tuple[int, float]:
    """curl's HTTP status and the wall time of the transfer; `user`: its credentials, or
    none at all."""
    started = time.monotonic()
    credentials = ["-u", user] if user is not None else []
    done = subprocess.run(
        ["curl", "-s", "-o", output, "-w", "%{http_code}", *credentials, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout or 0), time.monotonic() - started


def source_file(work: Path, size: int) -> Path:
    path = work / f"source-{size}"
    if not path.exists():
        with path.open("wb") as out:
            for chunk in engine_api.pseudo_random_chunks(size, size % 97):
                out.write(chunk)
    return path


def _form_upload(url: str, source: Path) -> tuple[int, float]:
    return curl("-F", f"data=@{source};filename=large.bin", "-F", "valueType=File", url)


def engine_case(running: Stack, store: str, source: Path, size: int) -> dict[str, object]:
    instance_id, _ = engine_api.start_instance(running.engine.base_url)
    url = f"{running.gateway.base_url}/engine-rest/process-instance/{instance_id}/variables/f/data"
    database = directory_bytes(running.engine_data)
    proc.reset_peak(running.engine.pid)
    upload_status, _ = _form_upload(url, source)
    download = running.work / "download"
    download_status, _ = curl(url, output=str(download))
    identical = download_status == 200 and filecmp(download, source)
    engine_peak = proc.kib(running.engine.pid, "VmHWM") / 1024
    growth = directory_bytes(running.engine_data) - database
    download.unlink(missing_ok=True)
    return {
        "store": store,
        "size_bytes": size,
        "upload_status": upload_status,
        "download_status": download_status,
        "identical": identical,
        "database_growth_bytes": growth,
        "engine_peak_rss_mib": round(engine_peak),
    }


def filecmp(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)], check=False).returncode == 0


@dataclass(frozen=True)
class Timed:
    """One transfer: curl's status, its wall time, and the gateway's CPU and peak RSS."""

    status: int
    seconds: float
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0


@dataclass(frozen=True)
class Round:
    path: str
    up: Timed
    down: Timed
    engine_peak_rss_mib: float | None = None
    database_growth_bytes: int | None = None


Transfer = Callable[[], tuple[int, float]]


def timed(pid: int | None, transfer: Transfer) -> Timed:
    """`transfer`, with what the process `pid` (the gateway, if any) spent on it."""
    if pid is None:
        return Timed(*transfer())
    before = proc.cpu_seconds([pid])
    proc.reset_peak(pid)
    status, seconds = transfer()
    return Timed(status, seconds, proc.cpu_seconds([pid]) - before, proc.kib(pid, "VmHWM") / 1024)


def _curl_transfer(*args: str) -> Transfer:
    return lambda: curl(*args)


def five_ways(running: Stack, store: str, source: Path, rounds: int) -> list[Round]:
    """1 GiB up and down through this stack's gateway, and beside it its store alone."""
    pid = running.gateway.running.pid
    instance_id, _ = engine_api.start_instance(running.engine.base_url)
    path = f"gateway, {store} store" if store != "none" else "gateway, no store"
    found: list[Round] = []
    for index in range(rounds):
        url = (
            f"{running.gateway.base_url}/engine-rest/process-instance/"
            f"{instance_id}/variables/f{index}/data?filename=large.bin"
        )
        database = directory_bytes(running.engine_data)
        proc.reset_peak(running.engine.pid)
        up = timed(pid, _curl_transfer("-T", str(source), url))
        down = timed(pid, _curl_transfer(url))
        engine_peak = proc.kib(running.engine.pid, "VmHWM") / 1024
        growth = directory_bytes(running.engine_data) - database
        found.append(Round(path, up, down, engine_peak, growth))
    if running.seaweed is not None:
        found += _seaweed_direct(running.seaweed, source, rounds)
    if running.store_dir is not None:
        found += _disk(running.store_dir, source, rounds)
    return found


def seaweed_curl(seaweed: processes.SeaweedFS, *args: str) -> Transfer:
    def transfer() -> tuple[int, float]:
        started = time.monotonic()
        done = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
             "--aws-sigv4", f"aws:amz:{processes.S3_REGION}:s3",
             "--user", f"{seaweed.access_key}:{seaweed.secret_key}", *args],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return int(done.stdout or 0), time.monotonic() - started

    return transfer


def _seaweed_direct(seaweed: processes.SeaweedFS, source: Path, rounds: int) -> list[Round]:
    found = []
    for index in range(rounds):
        url = f"{seaweed.url}/documents/direct-{index}"
        up = timed(None, seaweed_curl(seaweed, "-T", str(source), url))
        found.append(Round("SeaweedFS direct (curl)", up, timed(None, seaweed_curl(seaweed, url))))
    return found


def _copied(source: Path, target: Path) -> Transfer:
    def transfer() -> tuple[int, float]:
        started = time.monotonic()
        shutil.copyfile(source, target)  # sendfile on Linux
        descriptor = os.open(target, os.O_RDONLY)
        os.fsync(descriptor)
        os.close(descriptor)
        return 0, time.monotonic() - started

    return transfer


def _read(target: Path) -> Transfer:
    def transfer() -> tuple[int, float]:
        started = time.monotonic()
        subprocess.run(["sh", "-c", f"cat '{target}' > /dev/null"], check=True)
        return 0, time.monotonic() - started

    return transfer


def _disk(store_dir: Path, source: Path, rounds: int) -> list[Round]:
    found = []
    for index in range(rounds):
        target = store_dir / f"plain-copy-{index}"
        up = timed(None, _copied(source, target))
        found.append(Round("the disk alone (cp and fsync, cat)", up, timed(None, _read(target))))
        target.unlink()
    return found


def memory(running: Stack, store: str, source: Path) -> dict[str, object]:
    """4 GiB up and down through the gateway into this stack's store: its RSS growth."""
    size = source.stat().st_size
    pid = running.gateway.running.pid
    instance_id, _ = engine_api.start_instance(running.engine.base_url)
    url = (
        f"{running.gateway.base_url}/engine-rest/process-instance/{instance_id}"
        "/variables/big/data?filename=big.bin"
    )
    idle = proc.reset_peak(pid)
    up_status, up_seconds = curl("-T", str(source), url)
    down_status, down_seconds = curl(url)
    return {
        "store": store,
        "size_bytes": size,
        "upload_status": up_status,
        "download_status": down_status,
        "upload_mb_s": round(size / MB / up_seconds),
        "download_mb_s": round(size / MB / down_seconds),
        "gateway_idle_rss_mib": round(idle / 1024, 1),
        "gateway_growth_mib": round((proc.kib(pid, "VmHWM") - idle) / 1024, 1),
    }


def summary(rounds: list[Round], size: int) -> list[dict[str, object]]:
    """Medians over the rounds, per path."""
    rows: list[dict[str, object]] = []
    for path in dict.fromkeys(found.path for found in rounds):
        mine = [found for found in rounds if found.path == path]
        up = statistics.median(found.up.seconds for found in mine)
        down = statistics.median(found.down.seconds for found in mine)
        row: dict[str, object] = {
            "path": path,
            "statuses": sorted({t.status for found in mine for t in (found.up, found.down)}),
            "up_mb_s": round(size / MB / up),
            "down_mb_s": round(size / MB / down),
        }
        if mine[0].engine_peak_rss_mib is not None:
            gigabytes = size / 1e9
            row |= {
                "gateway_cpu_s_per_gb_up": round(
                    statistics.median(found.up.cpu_seconds for found in mine) / gigabytes, 2
                ),
                "gateway_cpu_s_per_gb_down": round(
                    statistics.median(found.down.cpu_seconds for found in mine) / gigabytes, 2
                ),
                "gateway_peak_rss_mib": round(
                    max(max(found.up.peak_rss_mib, found.down.peak_rss_mib) for found in mine), 1
                ),
                "engine_peak_rss_mib": round(max(found.engine_peak_rss_mib or 0 for found in mine)),
                "database_growth_bytes": max(found.database_growth_bytes or 0 for found in mine),
            }
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-documents-"))
    started = time.monotonic()
    sizes = (2 * MB, 3 * MB) if arguments.smoke else ENGINE_SIZES
    transfer, big, rounds = (4 * MB, 8 * MB, 1) if arguments.smoke else (GIB, 4 * GIB, 3)
    engine_rows: list[dict[str, object]] = []
    ways: list[Round] = []
    kept: list[dict[str, object]] = []
    try:
        sources = {size: source_file(work, size) for size in (*sizes, transfer, big)}
        for store in STORES:
            with stack(work / store, store) as running:
                engine_rows += [engine_case(running, store, sources[size], size) for size in sizes]
                ways += five_ways(running, store, sources[transfer], rounds)
                if store != "none":
                    kept.append(memory(running, store, sources[big]))
        result = {
            "machine": machine(),
            "engine": processes.engine_name(),
            "engine_heap": "1 GiB",
            "engine_cases": engine_rows,
            "transfer_bytes": transfer,
            "rounds": rounds,
            "five_ways": summary(ways, transfer),
            "five_ways_rounds": [dataclasses.asdict(found) for found in ways],
            "memory": kept,
            "seconds": round(time.monotonic() - started),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not arguments.smoke:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "documents.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "five_ways_rounds"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
