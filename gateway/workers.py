"""The gateway's processes: one by default, or a supervisor and `--workers` processes
sharing the ports.

One Python process tops out at about one core (bench/levers.py measures by how much), so on
a machine with cores to spare several workers each bind the public and admin ports with
SO_REUSEPORT and the kernel spreads new connections over them. The supervisor only starts
them, passes SIGTERM and SIGINT on (each worker drains as a single gateway would, app.py),
and stops them all when one dies unexpectedly: the container or unit restarts the whole,
rather than a half-sized gateway running on unnoticed.

Metrics stay correct across workers through prometheus-client's multiprocess mode: each
worker writes its values to files in a directory the supervisor owns, and whichever worker
answers a scrape adds them up (metrics.py).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from types import FrameType

from prometheus_client import multiprocess

from gateway import logstream
from gateway.app import serve
from gateway.config import Config
from gateway.metrics import SHARED_DIR_ENV

log = logging.getLogger("gateway")


def run(config: Config) -> int:
    """Serves until SIGTERM or SIGINT; the process's exit status."""
    if config.workers == 1:
        _serve(config)
        return 0
    return _supervise(config)


def _serve(config: Config) -> None:
    _configure_logging(config)
    with asyncio.Runner(loop_factory=event_loop_factory(config.event_loop)) as runner:
        runner.run(serve(config))


def _configure_logging(config: Config) -> None:
    # With several workers, each line says which one wrote it.
    worker = " pid=%(process)d" if config.workers > 1 else ""
    # What no line shows is not collected (the logging HOWTO's "Optimization"): the
    # caller's frame was a tenth of a small call's own time (py-spy, cProfile).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logProcesses = config.workers > 1
    logstream.configure(
        config.logging_level, f"%(asctime)s %(levelname)s %(name)s{worker} %(message)s"
    )


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """asyncio's own loop (None), or uvloop's when asked for and installed."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        raise SystemExit("--event-loop uvloop: uvloop is not installed") from None
    return uvloop.new_event_loop


def _supervise(config: Config) -> int:
    _configure_logging(config)
    try:
        shared_dir = tempfile.mkdtemp(prefix="engine-gateway-metrics-")
    except OSError as error:
        # A read-only root with no tmpfs (Kubernetes' readOnlyRootFilesystem, without an
        # emptyDir at /tmp): said in one line, where tempfile would raise a traceback.
        raise SystemExit(
            f"--workers {config.workers}: the workers share their metrics in a temporary "
            f"directory, and none is writable ({error}); mount a tmpfs at /tmp or set TMPDIR"
        ) from None
    # Read by prometheus-client when a worker imports it: spawned workers start fresh
    # interpreters that inherit this environment.
    os.environ[SHARED_DIR_ENV] = shared_dir
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_serve, args=(config,), name=f"engine-gateway-worker-{number}")
        for number in range(config.workers)
    ]
    stopping = False

    def stop(signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    try:
        for worker in workers:
            worker.start()
        log.info("supervising %d workers: %s", len(workers), [worker.pid for worker in workers])
        running = list(workers)
        while running:
            ended = multiprocessing.connection.wait([worker.sentinel for worker in running])
            for worker in [worker for worker in running if worker.sentinel in ended]:
                worker.join()
                running.remove(worker)
                multiprocess.mark_process_dead(worker.pid, shared_dir)  # type: ignore[no-untyped-call]
                if worker.exitcode != 0 or not stopping:
                    log.error(
                        "worker %s exited with %s%s",
                        worker.pid,
                        worker.exitcode,
                        "" if stopping else "; stopping the others",
                    )
                    failed = True
                    stop()
    finally:
        stop()
        for worker in workers:
            if worker.pid is not None:
                worker.join()
        shutil.rmtree(shared_dir, ignore_errors=True)
    return 1 if failed else 0
