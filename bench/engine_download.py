"""`make bench-engine-download`: what a binary download from the REAL ENGINE costs through
the gateway, where the engine sends it chunked (8 KiB chunks, no Content-Length), so
`--splice` cannot apply: it is relayed as the engine framed it (gateway/relay.py).

One 100 MB Bytes variable, uploaded once straight to the engine, then downloaded with curl
ROUNDS times, each round DOWNLOADS downloads direct and as many through the gateway,
alternating: the median wall time per round, and the gateway's CPU seconds per download.
Then py-spy samples the gateway over PROFILED downloads (bench/profile.py's summary).

    .venv/bin/python bench/engine_download.py   # writes bench/results/engine_download.json
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import compare, proc, profile
from tests import processes
from tests.integration import engine_api

SIZE = 100_000_000
ROUNDS = 3
DOWNLOADS = 5
PROFILED = 20


def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-engine-download-"))
    auth = ["-H", f"Authorization: {engine_api.AUTHORIZATION}"]
    with (
        processes.engine(work_dir) as engine,
        processes.gateway(work_dir, engine.base_url) as gateway,
    ):
        engine_api.deploy(engine.base_url)
        instance_id, task_id = engine_api.start_instance(engine.base_url)
        body = compare.upload_body(work_dir, SIZE)
        upload_url = f"{engine.base_url}/engine-rest/task/{task_id}/variables/doc/data"
        subprocess.run(["curl", "-s", *auth, *compare._uploads(upload_url, body, 1)], check=True)
        path = f"/engine-rest/process-instance/{instance_id}/variables/doc/data"

        def download(base_url: str) -> float:
            return compare._curl([*auth, "-o", "/dev/null", base_url + path])

        for base_url in (engine.base_url, gateway.base_url):  # warm-up: the JIT, the pools
            download(base_url)
        rounds = []
        for _ in range(ROUNDS):
            direct = statistics.median(download(engine.base_url) for _ in range(DOWNLOADS))
            cpu_before = proc.cpu_seconds([gateway.running.pid])
            through = statistics.median(download(gateway.base_url) for _ in range(DOWNLOADS))
            cpu = (proc.cpu_seconds([gateway.running.pid]) - cpu_before) / DOWNLOADS
            rounds.append(
                {
                    "direct_seconds": round(direct, 3),
                    "gateway_seconds": round(through, 3),
                    "added_percent": round(100 * (through / direct - 1), 1),
                    "gateway_cpu_seconds_per_download": round(cpu, 3),
                }
            )
            print(rounds[-1], flush=True)
        sampled = profile.profiled(
            gateway.running.pid,
            work_dir / "download.txt",
            lambda: [download(gateway.base_url) for _ in range(PROFILED)],
        )
    result = {
        "engine": processes.engine_name(),
        "machine": compare.machine(),
        "size_bytes": SIZE,
        "downloads_per_round": DOWNLOADS,
        "rounds": rounds,
        "profile": {"sampler": f"py-spy, {profile.RATE} Hz", "downloads": PROFILED, **sampled},
    }
    compare.RESULTS.mkdir(exist_ok=True)
    (compare.RESULTS / "engine_download.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
