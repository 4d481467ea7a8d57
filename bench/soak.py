"""`make soak`: mixed traffic against the REAL ENGINE through the gateway for a set time.

Each of CONCURRENCY clients loops until the deadline (or --max-transfers), every call
through the gateway: it starts a process instance, uploads a File variable of a random
size (up to 50 MB, pseudo-random bytes, as a multipart form, as clients send it), downloads
it back by a randomly chosen binary route, checks its SHA-256 and its filename against
what it sent, makes a few JSON calls, and deletes the instance and its history (the
engine, on H2 in memory here, keeps every value in its full history otherwise). Meanwhile
the gateway's RSS and open file descriptors are sampled every second.

The report (JSON, and a PNG of the samples) gives transfers, bytes, mismatches (must be
0), errors by kind, and RSS and descriptors over time (must be flat). Loopback only.

    .venv/bin/python bench/soak.py                      # 30 minutes
    .venv/bin/python bench/soak.py --seconds 120 --out /tmp/soak
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import proc
from tests import processes
from tests.integration import engine_api

# H2 in memory: on file, H2 grows by about twice the upload volume whatever the engine
# deletes (measured: 22 GB after five minutes of this soak), which would fill the disk long
# before 30 minutes are up. The soak is about the gateway, not H2's storage.
ENGINE_ARGS = ("--spring.datasource.url=jdbc:h2:mem:soak;DB_CLOSE_DELAY=-1",)
RESULTS = Path(__file__).resolve().parent / "results"
CHART = Path(__file__).resolve().parent.parent / "docs" / "soak.png"
MAX_SIZE = 50_000_000
# Sizes every run includes once per client at first: empty, one byte, either side of the
# gateway's 64 KiB read size, and the largest.
EDGE_SIZES = (0, 1, 65535, 65536, 65537, MAX_SIZE)
CONCURRENCY = 3
SAMPLE_SECONDS = 1.0
REQUEST_TIMEOUT_SECONDS = 300
# The binary routes a variable set on a task can be read back from.
ROUTES = ("task", "process-instance", "execution", "history")


@dataclass
class Tally:
    uploads: int = 0
    downloads: int = 0
    json_calls: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    mismatches: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)

    @property
    def transfers(self) -> int:
        return self.uploads + self.downloads


@dataclass(frozen=True)
class Sample:
    seconds: float
    rss_kib: int
    open_fds: int
    transfers: int


def _size(generator: random.Random, round_number: int) -> int:
    if round_number < len(EDGE_SIZES):
        return EDGE_SIZES[round_number]
    # Log-uniform from 1 KiB: as many small files as large ones, up to MAX_SIZE.
    return int(math.exp(generator.uniform(math.log(1024), math.log(MAX_SIZE))))


def _hashed(chunks: Iterator[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


class Mismatch(Exception):
    """A download that differs from what was uploaded: the soak's one unforgivable result."""


async def _call(
    client: aiohttp.ClientSession, method: str, url: str, expected: int, body: object = None
) -> Any:
    async with client.request(method, url, json=body) as response:
        raw = await response.read()
        if response.status != expected:
            raise RuntimeError(f"{method} {url} {response.status}: {raw[:200]!r}")
    return json.loads(raw) if raw else None


async def _start(client: aiohttp.ClientSession, api: str) -> tuple[str, str]:
    """A new instance of the test process: (process instance id, its user task's id)."""
    key = engine_api.PROCESS_KEY
    instance = await _call(client, "POST", f"{api}/process-definition/key/{key}/start", 200, {})
    tasks = await _call(client, "GET", f"{api}/task?processInstanceId={instance['id']}", 200)
    return str(instance["id"]), str(tasks[0]["id"])


async def _upload(
    client: aiohttp.ClientSession, api: str, task_id: str, size: int, filename: str, seed: int
) -> str:
    digest = hashlib.sha256()
    content = _hashed(engine_api.pseudo_random_chunks(size, seed), digest)
    form = engine_api.variable_form(content, size, value_type="File", filename=filename)
    url = f"{api}/task/{task_id}/variables/doc/data"
    status, text = await engine_api.post_form(client, url, form)
    if status != 204:
        raise RuntimeError(f"upload {status}: {text[:200]}")
    return digest.hexdigest()


async def _download_url(
    client: aiohttp.ClientSession, api: str, route: str, instance_id: str, task_id: str
) -> str:
    if route == "task":
        return f"{api}/task/{task_id}/variables/doc/data"
    if route == "process-instance":
        return f"{api}/process-instance/{instance_id}/variables/doc/data"
    if route == "execution":  # the instance's own execution shares its id
        return f"{api}/execution/{instance_id}/localVariables/doc/data"
    query = f"processInstanceId={instance_id}&variableName=doc"
    rows = await _call(client, "GET", f"{api}/history/variable-instance?{query}", 200)
    return f"{api}/history/variable-instance/{rows[0]['id']}/data"


async def _download(
    client: aiohttp.ClientSession, url: str, expected: str, size: int, filename: str
) -> None:
    digest = hashlib.sha256()
    received = 0
    async with client.get(url) as response:
        if response.status != 200:
            raise RuntimeError(f"download {response.status}: {(await response.text())[:200]}")
        named = response.content_disposition.filename if response.content_disposition else None
        async for chunk in response.content.iter_chunked(1 << 20):
            digest.update(chunk)
            received += len(chunk)
    if received != size or digest.hexdigest() != expected or named != filename:
        raise Mismatch(f"{url}: {received} bytes, sha256 {digest.hexdigest()}, named {named!r}")


async def _json_calls(
    client: aiohttp.ClientSession, api: str, instance_id: str, task_id: str
) -> int:
    urls = (
        f"{api}/engine",
        f"{api}/task/{task_id}",
        f"{api}/process-instance/{instance_id}/variables?deserializeValues=false",
        f"{api}/process-definition?key={engine_api.PROCESS_KEY}",
    )
    for url in urls:
        await _call(client, "GET", url, 200)
    return len(urls)


async def _delete(client: aiohttp.ClientSession, api: str, instance_id: str) -> None:
    await _call(client, "DELETE", f"{api}/process-instance/{instance_id}", 204)
    await _call(client, "DELETE", f"{api}/history/process-instance/{instance_id}", 204)


async def _client(
    number: int,
    client: aiohttp.ClientSession,
    api: str,
    deadline: float,
    max_transfers: int,
    tally: Tally,
) -> None:
    generator = random.Random(number)
    round_number = 0
    while time.monotonic() < deadline and tally.transfers < max_transfers:
        size = _size(generator, round_number)
        seed = generator.getrandbits(32)
        route = generator.choice(ROUTES)
        # Names the gateway must carry through RFC 8187: non-ASCII, spaces, quotes.
        filename = f"soak {number}-{round_number} «é\"'».bin"
        round_number += 1
        stage = "start"
        try:
            instance_id, task_id = await _start(client, api)
            stage = "upload"
            expected = await _upload(client, api, task_id, size, filename, seed)
            tally.uploads += 1
            tally.bytes_up += size
            stage = f"download {route}"
            url = await _download_url(client, api, route, instance_id, task_id)
            await _download(client, url, expected, size, filename)
            tally.downloads += 1
            tally.bytes_down += size
            tally.routes[route] += 1
            stage = "json"
            calls = await _json_calls(client, api, instance_id, task_id)
            stage = "delete"
            await _delete(client, api, instance_id)
            tally.json_calls += calls + 4  # not `+= await`: that reads before awaiting
        except Mismatch as mismatch:
            tally.mismatches += 1
            print(f"MISMATCH {mismatch}", file=sys.stderr, flush=True)
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as error:
            tally.errors[f"{stage}: {type(error).__name__}"] += 1
            print(f"error in {stage}: {error!r}", file=sys.stderr, flush=True)


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _sample(pid: int, started: float, tally: Tally, samples: list[Sample]) -> None:
    while True:
        samples.append(
            Sample(
                round(time.monotonic() - started, 1),
                proc.kib(pid, "VmRSS"),
                _open_fds(pid),
                tally.transfers,
            )
        )
        await asyncio.sleep(SAMPLE_SECONDS)  # the sampling period, not synchronisation


def _window(samples: list[Sample], start: float, end: float) -> list[Sample]:
    last = samples[-1].seconds
    return [s for s in samples if start * last <= s.seconds <= end * last] or samples[-1:]


def flatness(samples: list[Sample]) -> dict[str, float]:
    """RSS and descriptors early in the run (after the first tenth, once the pools and the
    allocator have warmed up) against the last fifth: a leak shows as growth."""
    early, late = _window(samples, 0.1, 0.3), _window(samples, 0.8, 1.0)
    return {
        "rss_early_mib": round(statistics.median(s.rss_kib for s in early) / 1024, 1),
        "rss_late_mib": round(statistics.median(s.rss_kib for s in late) / 1024, 1),
        "rss_max_mib": round(max(s.rss_kib for s in samples) / 1024, 1),
        "fds_early_max": max(s.open_fds for s in early),
        "fds_late_max": max(s.open_fds for s in late),
        "fds_max": max(s.open_fds for s in samples),
    }


async def soak(
    gateway_url: str, gateway_pid: int, seconds: float, max_transfers: int
) -> dict[str, object]:
    api = gateway_url + "/engine-rest"
    tally, samples = Tally(), list[Sample]()
    started = time.monotonic()
    sampler = asyncio.create_task(_sample(gateway_pid, started, tally, samples))
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    headers = {"Authorization": engine_api.AUTHORIZATION}
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as client:
        form = engine_api.deploy_form()
        status, text = await engine_api.post_form(client, f"{api}/deployment/create", form)
        if status != 200:
            raise RuntimeError(f"deployment {status}: {text[:200]}")
        await asyncio.gather(
            *(
                _client(n, client, api, started + seconds, max_transfers, tally)
                for n in range(CONCURRENCY)
            )
        )
    elapsed = time.monotonic() - started
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    counts = asdict(tally)
    counts["errors"] = dict(tally.errors)
    counts["routes"] = dict(tally.routes)
    return {
        "engine": processes.engine_name(),
        "seconds": round(elapsed, 1),
        "concurrency": CONCURRENCY,
        "max_size_bytes": MAX_SIZE,
        "transfers": tally.transfers,
        **counts,
        "error_count": sum(tally.errors.values()),
        "mb_per_s": round((tally.bytes_up + tally.bytes_down) / elapsed / 1e6, 1),
        "flatness": flatness(samples),
        "samples": [asdict(s) for s in samples],
    }


def chart(result: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    assert isinstance(samples, list)
    minutes = [s["seconds"] / 60 for s in samples]
    figure, (rss, fds, transfers) = plt.subplots(3, 1, sharex=True, figsize=(8, 7))
    rss.plot(minutes, [s["rss_kib"] / 1024 for s in samples])
    rss.set_ylabel("gateway RSS (MiB)")
    rss.set_ylim(bottom=0)
    fds.plot(minutes, [s["open_fds"] for s in samples], color="tab:orange")
    fds.set_ylabel("open descriptors")
    fds.set_ylim(bottom=0)
    transfers.plot(minutes, [s["transfers"] for s in samples], color="tab:green")
    transfers.set_ylabel("transfers (cumulative)")
    transfers.set_xlabel("minutes")
    figure.suptitle(
        f"Soak through the gateway to the real engine: {result['transfers']} transfers, "
        f"{result['mismatches']} mismatches, {result['error_count']} errors"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=1800.0)
    parser.add_argument("--max-transfers", type=int, default=100_000)
    parser.add_argument(
        "--out", type=Path, help="where soak.json and soak.png go (default: bench/results, docs)"
    )
    arguments = parser.parse_args(argv)
    json_path = (arguments.out or RESULTS) / "soak.json"
    png_path = arguments.out / "soak.png" if arguments.out else CHART
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the engine and the gateway are
    # stopped by the context managers below and the engine's files are removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    with (
        contextlib.ExitStack() as cleanup,
        processes.engine(work_dir, None, *ENGINE_ARGS) as engine,
        processes.gateway(work_dir, engine.base_url) as gateway,
    ):
        cleanup.callback(shutil.rmtree, work_dir, ignore_errors=True)
        result = asyncio.run(
            soak(
                gateway.base_url,
                gateway.running.pid,
                arguments.seconds,
                arguments.max_transfers,
            )
        )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    chart(result, png_path)
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    return 0 if result["mismatches"] == 0 and result["error_count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
