"""A short run of each atheris harness in `tests/fuzz`, side by side: each must end
without a crash and after many inputs, so a harness that breaks or stops exercising the
gateway fails here. `make fuzz` runs them for longer.

FUZZ_SECONDS sets how long each runs (60 by default; FUZZ_SECONDS=5 while working on one).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("headers", "disposition", "multipart", "jsonvalues", "reference", "ranges", "links")
FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "60"))
# Far below what a working harness does: the slowest, multipart, runs about 140 inputs a
# second with the three side by side on two cores (atheris' tracing of its byte-by-byte
# header loop costs it 10x). Fewer means a harness is not fuzzing.
MIN_INPUTS_PER_SECOND = 20
# libFuzzer's last line: "Done 12345 runs in 61 second(s)".
DONE = re.compile(rb"^Done (\d+) runs in \d+ second", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    returncode: int | None  # None: killed after its time was long over
    inputs: int
    log: Path
    artifacts: Path  # where a crashing input is written (crash-<sha1>)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every harness started at once, from its seeds, writing only under a temp dir."""
    started = {}
    for target in TARGETS:
        workdir = tmp_path_factory.mktemp(f"fuzz-{target}")
        corpus, artifacts = workdir / "corpus", workdir / "artifacts"
        corpus.mkdir()
        artifacts.mkdir()
        log = workdir / "log"
        command = [
            sys.executable,
            "-m",
            f"tests.fuzz.{target}_target",
            f"-max_total_time={FUZZ_SECONDS}",
            "-timeout=30",  # one input running this long is a hang: a crash too
            f"-artifact_prefix={artifacts}/",
            str(corpus),  # new entries go to the first directory, the seeds stay as they are
            str(ROOT / "tests" / "fuzz" / "corpus" / target),
        ]
        with log.open("wb") as output:
            process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        started[target] = (process, log, artifacts)
    finished = {}
    try:
        for target, (process, log, artifacts) in started.items():
            try:
                returncode: int | None = process.wait(timeout=FUZZ_SECONDS + 120)
            except subprocess.TimeoutExpired:
                returncode = None
            done = DONE.search(log.read_bytes())
            finished[target] = Run(returncode, int(done.group(1)) if done else 0, log, artifacts)
        yield finished
    finally:
        for process, _, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("target", TARGETS)
def test_harness_runs_many_inputs_without_a_crash(runs: dict[str, Run], target: str) -> None:
    run = runs[target]
    crashes = sorted(str(path) for path in run.artifacts.iterdir())
    tail = run.log.read_text(errors="replace")[-4000:]
    assert run.returncode == 0, f"exit {run.returncode}, crash inputs {crashes}:\n{tail}"
    assert not crashes, f"crash inputs {crashes}:\n{tail}"
    minimum = MIN_INPUTS_PER_SECOND * FUZZ_SECONDS
    assert run.inputs > minimum, f"only {run.inputs} inputs in {FUZZ_SECONDS} s:\n{tail}"
