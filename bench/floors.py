"""`make bench-floors`: what #21's remaining goals would cost at the least, on this machine.

Two floors, each beside the gateway's own figure in the same run, ROUNDS rounds (median,
min, max):

- **An upload's bytes through Python.** One thread receives 1 GiB from a loopback socket
  1 MiB at a time, looks for a multipart delimiter in each piece (`in`, as the form check
  does) and sends it on to another loopback socket, with blocking calls and no event loop:
  the least any Python relay of the bytes pays. Its CPU seconds per GB (that thread's,
  sender and receiver are other threads) with and without sha-256 (the default digest),
  and sha-256 alone over the same pieces. Then the gateway's, for a 1 GiB form upload
  (curl -T) to the STUB UPSTREAM (tests/faults/stub_upstream.py, not an engine), with
  `--digests off` and on.
- **A small call through aiohttp.** `GET /engine-rest/engine` with wrk at 10 connections
  for CALL_SECONDS, the server under test alone on CPU 0, wrk and the upstream on CPU 1:
  the server's CPU microseconds per request. First the stub upstream itself (an aiohttp
  server answering a fixed body: the least an aiohttp server pays per request), then the
  gateway in front of it with its defaults, `--log-level warning` (no access log line) and
  `--metrics off`.

    .venv/bin/python bench/floors.py     # writes bench/results/floors.json
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import compare, engine_cases, proc
from tests import processes

ROUNDS = 3
UPLOAD_BYTES = compare.GIB
PIECE_BYTES = 1024 * 1024
DELIMITER = b"\r\n--" + compare.BOUNDARY.encode()
CALL_SECONDS = 5
CONNECTIONS = 10
GATEWAY_VARIANTS: dict[str, tuple[str, ...]] = {
    "gateway (defaults)": (),
    "gateway --log-level warning": ("--log-level", "warning"),
    "gateway --metrics off": ("--metrics", "off"),
}


def _python_relay(*, hashed: bool) -> float:
    """CPU seconds per GB of the one thread that relays UPLOAD_BYTES between two sockets."""
    with (
        socket.create_server((processes.LOOPBACK, 0)) as inlet,
        socket.create_server((processes.LOOPBACK, 0)) as outlet,
    ):

        def send() -> None:
            with socket.create_connection(inlet.getsockname()) as client:
                piece, left = memoryview(bytes(PIECE_BYTES)), UPLOAD_BYTES
                while left:
                    left -= client.send(piece[: min(left, PIECE_BYTES)])

        def sink() -> None:
            peer, _ = outlet.accept()
            with peer:
                into = bytearray(PIECE_BYTES)
                while peer.recv_into(into):
                    pass

        threads = [threading.Thread(target=send), threading.Thread(target=sink)]
        for thread in threads:
            thread.start()
        incoming, _ = inlet.accept()
        with incoming, socket.create_connection(outlet.getsockname()) as onward:
            digest = hashlib.sha256()
            started = time.thread_time()
            while piece := incoming.recv(PIECE_BYTES):
                if DELIMITER in piece:
                    raise AssertionError("no delimiter is sent")
                if hashed:
                    digest.update(piece)
                onward.sendall(piece)
            spent = time.thread_time() - started
        for thread in threads:
            thread.join()
    return spent / (UPLOAD_BYTES / 1e9)


def _sha256_alone() -> float:
    piece, digest = bytes(PIECE_BYTES), hashlib.sha256()
    started = time.thread_time()
    for _ in range(UPLOAD_BYTES // PIECE_BYTES):
        digest.update(piece)
    return (time.thread_time() - started) / (UPLOAD_BYTES / 1e9)


def upload_floor(work_dir: Path) -> dict[str, object]:
    files = work_dir / "files"
    files.mkdir()
    compare.upload_body(files, UPLOAD_BYTES)  # made and read once before any round
    rounds: dict[str, list[float]] = {}

    def note(case: str, value: float) -> None:
        rounds.setdefault(case, []).append(value)
        print(case, round(value, 3), flush=True)

    with processes.stub_upstream(files) as stub_url:
        for digests in ("off", "on"):
            gateway_dir = work_dir / f"upload-digests-{digests}"
            gateway_dir.mkdir()
            with processes.gateway(
                gateway_dir, stub_url, "--max-upload-bytes", "0", "--digests", digests
            ) as gateway:
                route = compare.Route("gateway", gateway.base_url, gateway.running.pid)
                for _ in range(ROUNDS):
                    result = compare.measure(route, "upload", UPLOAD_BYTES, 1, files)
                    assert result.proxy_cpu_s_per_gb is not None
                    note(f"gateway --digests {digests}: CPU s/GB", result.proxy_cpu_s_per_gb)
                    note(f"gateway --digests {digests}: MB/s", result.mb_s)
        direct = compare.Route("direct", stub_url, None)
        for _ in range(ROUNDS):
            note(
                "direct to the stub: MB/s",
                compare.measure(direct, "upload", UPLOAD_BYTES, 1, files).mb_s,
            )
    for _ in range(ROUNDS):
        note("python relay: CPU s/GB", _python_relay(hashed=False))
        note("python relay with sha-256: CPU s/GB", _python_relay(hashed=True))
        note("sha-256 alone: CPU s/GB", _sha256_alone())
    return {case: engine_cases.spread(values) for case, values in rounds.items()}


@contextlib.contextmanager
def _pinned(pid: int, cpu: int) -> Iterator[None]:
    """Every thread of `pid` on `cpu`, and back where it was after."""
    tasks = {int(task): os.sched_getaffinity(int(task)) for task in os.listdir(f"/proc/{pid}/task")}
    for task in tasks:
        os.sched_setaffinity(task, {cpu})
    try:
        yield
    finally:
        for task, where in tasks.items():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(task, where)


def _per_request(pid: int, url: str) -> dict[str, float]:
    """The server's CPU microseconds per request, and wrk's requests per second."""
    compare._wrk(url, CONNECTIONS, 1)  # warm: connections, caches
    before, started = proc.cpu_seconds([pid]), time.monotonic()
    shown = compare._wrk(url, CONNECTIONS, CALL_SECONDS)
    elapsed = time.monotonic() - started
    spent = proc.cpu_seconds([pid]) - before
    served = shown["requests_per_s"] * elapsed
    return {"cpu_us_per_request": spent / served * 1e6, "requests_per_s": shown["requests_per_s"]}


def small_call_floor(work_dir: Path) -> dict[str, object]:
    rounds: dict[str, list[float]] = {}
    started = itertools.count()

    def measured(case: str, pid: int, url: str) -> None:
        with _pinned(pid, 0):
            shown = _per_request(pid, url + "/engine-rest/engine")
        for key, value in shown.items():
            rounds.setdefault(f"{case}: {key}", []).append(value)
        print(case, shown, flush=True)

    with processes.stub_upstream() as stub_url:
        stub_pid = _stub_pid()
        for _ in range(ROUNDS):
            measured("stub upstream (bare aiohttp)", stub_pid, stub_url)
            for case, extra in GATEWAY_VARIANTS.items():
                gateway_dir = work_dir / f"calls-{next(started)}"
                gateway_dir.mkdir()
                with processes.gateway(gateway_dir, stub_url, *extra) as gateway:
                    measured(case, gateway.running.pid, gateway.base_url)
    return {case: engine_cases.spread(values) for case, values in rounds.items()}


def _stub_pid() -> int:
    """The stub upstream's pid: our child running tests.faults.stub_upstream."""
    for pid in processes.with_children(os.getpid()):
        if b"tests.faults.stub_upstream" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise LookupError("the stub upstream is not running")


def main() -> int:
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("bench/floors.py pins the server to one CPU and wrk to another")
    started = time.monotonic()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-floors-"))
    everything = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})  # wrk, curl and the stub start from here: CPU 1
    try:
        calls = small_call_floor(work_dir)
    finally:
        os.sched_setaffinity(0, everything)
    result: dict[str, object] = {
        "machine": compare.machine(),
        "small_call": calls,
        "upload": upload_floor(work_dir),
        "seconds": round(time.monotonic() - started),
    }
    compare.RESULTS.mkdir(exist_ok=True)
    (compare.RESULTS / "floors.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
