"""`make soak` for two minutes (bench/soak.py): mixed uploads, downloads and JSON calls
through the gateway to the real engine, every transfer checked by SHA-256 and filename;
nothing mismatched, nothing failed, and the gateway's memory and descriptors flat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests import processes

SOAK_SECONDS = 120
# Early against late in the run (bench/soak.py's flatness). Two minutes move about a
# thousand transfers, so 8 KiB kept per transfer would fail the first.
RSS_GROWTH_MIB = 4.0
FD_GROWTH = 2


def test_two_minutes_of_mixed_traffic_lose_nothing_and_leak_nothing(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "bench/soak.py", "--seconds", str(SOAK_SECONDS), "--out", str(tmp_path)],
        cwd=processes.ROOT,
        capture_output=True,
        text=True,
        timeout=SOAK_SECONDS + 600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["mismatches"] == 0
    assert result["errors"] == {}
    assert result["uploads"] == result["downloads"] > 50
    assert set(result["routes"]) == {"task", "process-instance", "execution", "history"}
    flat = result["flatness"]
    assert flat["rss_late_mib"] - flat["rss_early_mib"] < RSS_GROWTH_MIB, flat
    assert flat["fds_late_max"] <= flat["fds_early_max"] + FD_GROWTH, flat
    assert (tmp_path / "soak.png").stat().st_size > 0
