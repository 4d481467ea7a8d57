"""The documents API, measured side by side in one run (bench/results/documents_api.json).

    make bench-documents-api    # or: .venv/bin/python bench/documentsapi.py [--smoke]

For each store (the disk, SeaweedFS), a gateway in front of the real engine, curl as the
client of every path:

1. **1 GiB up and down**, three rounds, medians. Up: `POST /documents` (curl -F), beside a
   raw `PUT` of the same file to a variable (offloaded: the same way into the store, plus
   the engine's write of the reference). Down: the caller's read
   (`GET /documents/{id}?contentHash=`), a gateway link (no credentials), the variable's
   download; on S3 also the store's presigned URL (`--document-links store`: the bytes
   bypass the gateway) and SeaweedFS direct (curl signing with SigV4). The gateway's CPU
   per GB and peak RSS for each.
2. **Small reads**: a 10 KB document read 300 times in a row on one connection, by the
   caller (its credentials checked by the engine once, then remembered) and by a link;
   beside them the engine's own `GET /engine-rest/version`, which is what a check costs
   when it is not remembered. Median and p95 in ms.

The machine's cores are shared by curl, the gateway, the engine and SeaweedFS.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.compare import machine
from bench.documents import MB, Stack, Transfer, curl, seaweed_curl, source_file, stack, timed
from tests import processes
from tests.integration import engine_api

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 1 << 30
STORES = ("file", "s3")
SMALL_BYTES = 10_000
SMALL_READS = 300


def _created(answer: Path) -> dict[str, Any]:
    made: dict[str, Any] = json.loads(answer.read_text())
    return made


def _link(base: str, made: dict[str, Any], work: Path) -> str:
    path = f"{base}/documents/{made['documentId']}/links?contentHash={made['contentHash']}"
    answer = work / "link.json"
    status, _ = curl("-H", "Content-Type: application/json", "-d", '{"timeToLive":3600000}',
                     path, output=str(answer))  # fmt: skip
    assert status == 201, status
    url: str = json.loads(answer.read_text())["url"]
    answer.unlink()
    return url


def _store_links_gateway(running: Stack, stacked: ExitStack) -> processes.Gateway:
    """A second gateway on the same S3 store and keys, handing out presigned URLs."""
    assert running.seaweed is not None
    work = running.work / "store-links"
    work.mkdir()
    args = (
        "--document-store", "s3://documents",
        "--document-store-endpoint", running.seaweed.url,
        "--document-key-file", str(running.work / "document-keys"),
        "--document-links", "store",
    )  # fmt: skip
    return stacked.enter_context(
        processes.gateway(work, running.engine.base_url, *args, env=running.seaweed.credentials)
    )


def transfers(running: Stack, store: str, source: Path, rounds: int) -> list[dict[str, Any]]:
    pid = running.gateway.running.pid
    base = running.gateway.base_url
    found: list[dict[str, Any]] = []

    def measured(path: str, direction: str, transfer: Transfer, by: int | None = pid) -> None:
        row = dataclasses.asdict(timed(by, transfer))
        if by is None:  # not through the gateway: nothing of it is the gateway's
            del row["cpu_seconds"], row["peak_rss_mib"]
        found.append({"store": store, "path": path, "direction": direction, **row})

    instance_id, _ = engine_api.start_instance(running.engine.base_url)
    answer = running.work / "made.json"
    with ExitStack() as stacked:
        presigning = _store_links_gateway(running, stacked) if running.seaweed else None
        for index in range(rounds):
            form = ("-F", f"file=@{source};filename=large.bin", f"{base}/documents")
            measured("POST /documents", "up", partial(curl, *form, output=str(answer)))
            made = _created(answer)
            read = f"{base}/documents/{made['documentId']}?contentHash={made['contentHash']}"
            measured("the caller's read", "down", partial(curl, read))
            measured(
                "a gateway link", "down", partial(curl, _link(base, made, running.work), user=None)
            )
            variable = (
                f"{base}/engine-rest/process-instance/{instance_id}/variables/v{index}/data"
                "?filename=large.bin"
            )
            measured(
                "raw PUT to a variable (offloaded)",
                "up",
                partial(curl, "-T", str(source), variable),
            )
            measured("the variable's download", "down", partial(curl, variable))
            if presigning is not None and running.seaweed is not None:
                presigned = _link(presigning.base_url, made, running.work)
                measured("the store's presigned URL", "down", partial(curl, presigned, user=None))
                direct = f"{running.seaweed.url}/documents/content/{made['contentHash']}"
                measured(
                    "SeaweedFS direct (curl, SigV4)",
                    "down",
                    seaweed_curl(running.seaweed, direct),
                    None,
                )
    return found


async def _latencies(url: str, headers: dict[str, str], count: int) -> list[float]:
    found = []
    async with aiohttp.ClientSession(headers=headers) as client:
        for _ in range(count):
            started = time.perf_counter()
            async with client.get(url) as response:
                await response.read()
                assert response.status == 200, response.status
            found.append((time.perf_counter() - started) * 1000)
    return found


def small_reads(running: Stack, store: str, count: int) -> list[dict[str, Any]]:
    base = running.gateway.base_url
    answer = running.work / "small.json"
    small = running.work / "small.bin"
    small.write_bytes(b"".join(engine_api.pseudo_random_chunks(SMALL_BYTES, 3)))
    status, _ = curl("-F", f"file=@{small}", f"{base}/documents", output=str(answer))
    assert status == 201, status
    made = _created(answer)
    read = f"{base}/documents/{made['documentId']}?contentHash={made['contentHash']}"
    credentials = {"Authorization": engine_api.AUTHORIZATION}
    cases: tuple[tuple[str, str, dict[str, str]], ...] = (
        ("the caller's read (credentials remembered)", read, credentials),
        ("a gateway link", _link(base, made, running.work), {}),
        ("the engine's GET /engine-rest/version (a check not remembered)",
         f"{running.engine.base_url}/engine-rest/version", credentials),
    )  # fmt: skip
    rows = []
    for path, url, headers in cases:
        found = sorted(asyncio.run(_latencies(url, headers, count)))
        rows.append(
            {
                "store": store,
                "path": path,
                "requests": count,
                "median_ms": round(statistics.median(found), 2),
                "p95_ms": round(found[int(len(found) * 0.95) - 1], 2),
            }
        )
    return rows


def summary(rows: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Medians over the rounds, per store, path and direction."""
    found = []
    keys = dict.fromkeys((row["store"], row["path"], row["direction"]) for row in rows)
    for store, path, direction in keys:
        mine = [
            r for r in rows if (r["store"], r["path"], r["direction"]) == (store, path, direction)
        ]
        seconds = statistics.median(r["seconds"] for r in mine)
        entry: dict[str, Any] = {
            "store": store,
            "path": path,
            "direction": direction,
            "statuses": sorted({r["status"] for r in mine}),
            "mb_s": round(size / MB / seconds),
        }
        if "cpu_seconds" in mine[0]:
            entry["gateway_cpu_s_per_gb"] = round(
                statistics.median(r["cpu_seconds"] for r in mine) / (size / 1e9), 2
            )
            entry["gateway_peak_rss_mib"] = round(max(r["peak_rss_mib"] for r in mine), 1)
        found.append(entry)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-documents-api-"))
    started = time.monotonic()
    size, rounds, count = (4 * MB, 1, 5) if arguments.smoke else (GIB, 3, SMALL_READS)
    rows: list[dict[str, Any]] = []
    small: list[dict[str, Any]] = []
    try:
        source = source_file(work, size)
        for store in STORES:
            with stack(work / store, store) as running:
                rows += transfers(running, store, source, rounds)
                small += small_reads(running, store, count)
        result = {
            "machine": machine(),
            "engine": processes.engine_name(),
            "transfer_bytes": size,
            "rounds": rounds,
            "transfers": summary(rows, size),
            "transfer_rounds": rows,
            "small_reads": small,
            "seconds": round(time.monotonic() - started),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not arguments.smoke:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "documents_api.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "transfer_rounds"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
