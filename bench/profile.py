"""`make bench-profile`: where the gateway's time goes, sampled by py-spy while it serves
the STUB UPSTREAM (tests/faults/stub_upstream.py, not an engine):

- a 4 GiB multipart upload (curl -T), the path that stays in Python;
- `GET /engine-rest/engine` from wrk at 10 connections, the small-call path.

For each: the share of samples by innermost frame ("self") and by the frames on the stack
("inclusive"), the top ones, in bench/results/profile.json.

    .venv/bin/python bench/profile.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import compare
from tests import processes

PY_SPY = Path(sys.executable).parent / "py-spy"
RATE = 500
TOP = 15


def _frame(raw: str) -> str:
    """`function (path/to/file.py:line)` as `function (file.py)`."""
    name, _, where = raw.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})" if where else name


def summarise(raw_path: Path) -> dict[str, object]:
    own: Counter[str] = Counter()
    on_stack: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            on_stack[frame] += samples

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, round(100 * n / total, 1)) for frame, n in counter.most_common(TOP)]

    return {"samples": total, "self_percent": shares(own), "inclusive_percent": shares(on_stack)}


def profiled(pid: int, out: Path, work: Callable[[], object]) -> dict[str, object]:
    spy = subprocess.Popen(
        [str(PY_SPY), "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", str(RATE),
         "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1)  # py-spy attaches; what is measured starts after
        work()
    finally:
        spy.send_signal(2)
        spy.wait(timeout=60)
    return summarise(out)


def main() -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    body = compare.upload_body(work_dir, 4 * compare.GIB)
    with (
        processes.stub_upstream() as stub_url,
        processes.gateway(work_dir, stub_url, "--max-upload-bytes", "0") as gateway,
    ):
        pid = gateway.running.pid
        upload = profiled(
            pid,
            work_dir / "upload.txt",
            lambda: compare._curl(compare._uploads(gateway.base_url + compare.UPLOAD, body, 1)),
        )
        small = profiled(
            pid,
            work_dir / "json.txt",
            lambda: compare._wrk(gateway.base_url + "/engine-rest/engine", 10, 6),
        )
    result = {
        "upstream": "stub upstream (aiohttp), not an engine",
        "sampler": f"py-spy, {RATE} Hz",
        "upload_4gib": upload,
        "json_engine_c10": small,
    }
    compare.RESULTS.mkdir(exist_ok=True)
    (compare.RESULTS / "profile.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
