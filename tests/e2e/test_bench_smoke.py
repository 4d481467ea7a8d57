"""`make bench` in miniature (tiny sizes, 1-second wrk runs): every path starts, every case
moves its bytes, and the report renders docs/performance.md's tables and the chart from the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import report
from tests import processes


def test_the_benchmark_runs_every_case_and_reports_them(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "bench/compare.py", "--smoke", str(tmp_path)],
        cwd=processes.ROOT,
        check=True,
        capture_output=True,
    )
    result = json.loads((tmp_path / "compare.json").read_text())
    cases = result["stub"]["cases"]
    assert {c["path"] for c in cases} == set(report.PATHS)
    assert {c["direction"] for c in cases} == {"download", "upload"}
    assert all(c["mb_s"] > 0 for c in cases)
    assert {t["path"] for t in result["real_engine"]["transfers"]} == {
        "direct", "gateway", "nginx-tuned", "nginx+gateway"
    }  # fmt: skip
    assert all(c["requests_per_s"] > 0 for c in result["real_engine"]["json"])
    assert (tmp_path / "compare.png").stat().st_size > 0

    text = report.markdown(result)
    assert "| upload | 64 KiB x 2 |" in text
    assert "| `GET /engine`, 32 connections, req/s vs nginx | ≥ 0.5 |" in text  # #21's goals


def test_the_documents_benchmark_runs_every_path_and_reports_them() -> None:
    """bench/documents.py in miniature: every store, every way, the memory cases."""
    result = _smoke_result("bench/documents.py")
    assert {case["store"] for case in result["engine_cases"]} == {"none", "file", "s3"}
    stored = [case for case in result["engine_cases"] if case["store"] != "none"]
    assert all(case["identical"] for case in stored)
    assert [row["path"] for row in result["five_ways"]] == [
        "gateway, no store",
        "gateway, file store",
        "the disk alone (cp and fsync, cat)",
        "gateway, s3 store",
        "SeaweedFS direct (curl)",
    ]
    assert {row["store"] for row in result["memory"]} == {"file", "s3"}


def test_the_documents_api_benchmark_runs_every_path() -> None:
    """bench/documentsapi.py in miniature: each store, each way, the small reads."""
    result = _smoke_result("bench/documentsapi.py")
    paths = {(row["store"], row["path"]) for row in result["transfers"]}
    assert {path for store, path in paths if store == "file"} == {
        "POST /documents",
        "the caller's read",
        "a gateway link",
        "raw PUT to a variable (offloaded)",
        "the variable's download",
    }
    assert {path for store, path in paths if store == "s3"} >= {
        "the store's presigned URL",
        "SeaweedFS direct (curl, SigV4)",
    }
    assert all(row["statuses"] in ([200], [201], [204]) for row in result["transfers"])
    assert len(result["small_reads"]) == 6


def _smoke_result(script: str) -> Any:
    """What a benchmark prints (JSON) when run with --smoke."""
    done = subprocess.run(
        [sys.executable, script, "--smoke"],
        cwd=processes.ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout)
