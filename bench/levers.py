"""`make bench-levers`: what each switchable optimisation is worth, measured side by side
in one run against the STUB UPSTREAM (tests/faults/stub_upstream.py, not an engine):

- `--splice on|off`: a 1 GiB download (curl), MB/s and the gateway's CPU seconds per GB;
- `--event-loop uvloop|asyncio`: the same download, a 1 GiB upload (curl -T, a multipart
  form), and `GET /engine-rest/engine` with wrk at 1 and 50 connections;
- `--workers 2`: the same cases, two processes on the port (CPU and RSS are the sum over
  the supervisor and its workers).

Every case runs ROUNDS times, alternating the variants; the JSON keeps every round.

    .venv/bin/python bench/levers.py        # writes bench/results/levers.json
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import compare, proc
from tests import processes

ROUNDS = 3
SIZE = compare.GIB
VARIANTS = {
    "defaults (splice on, asyncio)": ("--splice", "on", "--event-loop", "asyncio"),
    "splice off": ("--splice", "off", "--event-loop", "asyncio"),
    "uvloop": ("--splice", "on", "--event-loop", "uvloop"),
    "2 workers": ("--splice", "on", "--event-loop", "asyncio", "--workers", "2"),
}


def _transfer(gateway: processes.Gateway, direction: str, files: Path) -> dict[str, float]:
    result = compare.measure(
        compare.Route("gateway", gateway.base_url, gateway.running.pid), direction, SIZE, 1, files
    )
    return {"mb_s": result.mb_s, "cpu_s_per_gb": result.proxy_cpu_s_per_gb or 0.0}


def main() -> int:
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-levers-"))
    files = work_dir / "files"
    files.mkdir()
    compare.make_files(files, compare.Plan(((SIZE, 1),), None, 0, 0, (), {}))
    rounds: dict[str, list[dict[str, object]]] = {name: [] for name in VARIANTS}
    with processes.stub_upstream(files) as stub_url:
        unlimited = ("--max-upload-bytes", "0")
        with contextlib.ExitStack() as running:
            gateways = {
                name: running.enter_context(
                    processes.gateway(work_dir, stub_url, *flags, *unlimited)
                )
                for name, flags in VARIANTS.items()
            }
            for gateway in gateways.values():  # warm-up
                compare._wrk(gateway.base_url + "/engine-rest/engine", 1, 1)
            for _ in range(ROUNDS):
                for name, gateway in gateways.items():
                    entry: dict[str, object] = {
                        "download": _transfer(gateway, "download", files),
                        "upload": _transfer(gateway, "upload", files),
                    }
                    for connections in (1, 50):
                        url = gateway.base_url + "/engine-rest/engine"
                        entry[f"json_c{connections}"] = compare._wrk(url, connections, 3)
                    rounds[name].append(entry)
                    print(name, entry, flush=True)
            rss = {
                name: sum(proc.kib(pid, "VmRSS") for pid in processes.with_children(g.running.pid))
                // 1024
                for name, g in gateways.items()
            }
    result = {
        "upstream": "stub upstream (aiohttp), not an engine",
        "machine": compare.machine(),
        "size": SIZE,
        "rounds": rounds,
        "rss_mib_after": rss,
        "wall_seconds": round(time.monotonic() - started),
    }
    compare.RESULTS.mkdir(exist_ok=True)
    (compare.RESULTS / "levers.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
