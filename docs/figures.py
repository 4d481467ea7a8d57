"""The figures tables, from the benchmarks' results in bench/results/: a page shows what the
last run of each benchmark measured, and the results file keeps it (git has the history).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report
from docs.reference import code, table

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"
GIB = 1 << 30


def load(name: str) -> Any:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _range(values: list[float], digits: int = 0) -> str:
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def _or_dash(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _size(size_bytes: int) -> str:
    return report.size_name(size_bytes) if size_bytes % 1024 == 0 else f"{size_bytes / 1e6:g} MB"


def _machine(machine: dict[str, Any]) -> str:
    return f"{machine['cpu']}, {machine['cores']} cores, Python {machine['python']}"


# --- the README's headline -------------------------------------------------------------


def headline() -> str:
    compare = load("compare")
    cases = {
        (c["path"], c["direction"], c["size"], c["concurrency"]): c
        for c in compare["stub"]["cases"]
    }
    streams, soak = load("streams"), load("soak")
    transfers = {t["path"]: t for t in compare["real_engine"]["transfers"]}
    direct, gateway = transfers["direct"], transfers["gateway"]
    rows = []
    for direction in ("download", "upload"):
        mine = cases[("gateway", direction, GIB, 1)]["mb_s"]
        rows.append(
            (
                f"1 GiB {direction}, one stream (fast stub upstream)",
                f"{mine:.0f} MB/s: {mine / cases[('direct', direction, GIB, 1)]['mb_s']:.2f}x "
                f"direct, {mine / cases[('nginx-tuned', direction, GIB, 1)]['mb_s']:.2f}x nginx",
                code("make bench"),
            )
        )
    added = [(gateway[k] / direct[k] - 1) * 100 for k in ("upload_seconds", "download_seconds")]
    rows += [
        (
            f"{direct['bytes'] / 1e6:.0f} MB through the real engine: wall time added",
            f"{added[0]:+.1f}% up, {added[1]:+.1f}% down",
            code("make bench"),
        ),
        (
            "gateway memory while 4 GiB streams / 100 streams at once",
            f"+{streams['4gib_gateway_rss_growth_mib']} MiB / "
            f"+{streams['100x40mb_gateway_rss_growth_mib']} MiB",
            code("make bench-streams"),
        ),
        _documents_headline(),
        _documents_api_headline(),
        (
            f"{soak['seconds'] / 60:.0f} minutes of mixed traffic to the real engine",
            f"{soak['transfers']:,} transfers, {soak['mismatches']} mismatches, "
            f"{soak['error_count']} errors",
            code("make soak"),
        ),
    ]
    return table(("what", "measured", "reproduce"), rows)


def _documents_headline() -> tuple[str, str, str]:
    cases = load("documents")["engine_cases"]
    largest = max(case["size_bytes"] for case in cases)
    without = next(c for c in cases if c["size_bytes"] == largest and c["store"] == "none")
    stored = next(c for c in cases if c["size_bytes"] == largest and c["store"] == "s3")
    return (
        f"a {largest / 1e6:.0f} MB File and the 1 GiB-heap engine",
        f"without a store: {without['upload_status']}; with one: stored, "
        f"the engine's database {_growth(stored['database_growth_bytes'])}",
        code("make bench-documents"),
    )


def _documents_api_headline() -> tuple[str, str, str]:
    result = load("documents_api")
    rows = {(row["store"], row["path"]): row for row in result["transfers"]}
    up, link = rows[("file", "POST /documents")], rows[("file", "a gateway link")]
    return (
        f"{_size(result['transfer_bytes'])} through the documents API, file store",
        f"{up['mb_s']} MB/s up, {link['mb_s']} MB/s down by a link",
        code("make bench-documents-api"),
    )


# --- performance -----------------------------------------------------------------------


def compare() -> str:
    return report.markdown(load("compare"))


def streams() -> str:
    result = load("streams")
    rows = [
        (
            "4 GiB download",
            f"{result['4gib_direct']['download_mb_s']} MB/s",
            f"{result['4gib_through_gateway']['download_mb_s']} MB/s",
            f"+{result['4gib_gateway_rss_growth_mib']} MiB",
        ),
        (
            "4 GiB upload (curl `-F`)",
            f"{result['4gib_direct']['upload_mb_s']} MB/s",
            f"{result['4gib_through_gateway']['upload_mb_s']} MB/s",
            "(same run)",
        ),
        (
            "100 × 40 MB downloads at once",
            f"{result['100x40mb_direct']['download_mb_s']} MB/s in all",
            f"{result['100x40mb_through_gateway']['download_mb_s']} MB/s in all",
            f"+{result['100x40mb_gateway_rss_growth_mib']} MiB",
        ),
        (
            "100 × 40 MB uploads at once",
            f"{result['100x40mb_direct']['upload_mb_s']} MB/s in all",
            f"{result['100x40mb_through_gateway']['upload_mb_s']} MB/s in all",
            "(same run)",
        ),
    ]
    return (
        table(("case", "direct", "through the gateway", "gateway RSS growth"), rows)
        + f"\n\nThe gateway's RSS at idle: {result['gateway_idle_rss_mib']} MiB."
    )


def memory() -> str:
    result = load("memory_100mb")
    return table(
        ("file", "gateway RSS at idle", "peak", "growth", "upload", "download"),
        [
            (
                f"{result['size_bytes'] / 1e6:.0f} MB File, {result['engine']}",
                f"{result['gateway_idle_rss_mib']} MiB",
                f"{result['gateway_peak_rss_mib']} MiB",
                f"+{result['gateway_peak_above_idle_mib']} MiB",
                f"{result['upload_mb_per_second']:.0f} MB/s",
                f"{result['download_mb_per_second']:.0f} MB/s",
            )
        ],
    )


def soak() -> str:
    result = load("soak")
    flat = result["flatness"]
    rows = [
        ("length", f"{result['seconds'] / 60:.0f} minutes, {result['concurrency']} clients"),
        (
            "transfers",
            f"{result['transfers']:,} ({result['uploads']:,} uploads, "
            f"{result['downloads']:,} downloads), {result['bytes_up'] / 1e9:.1f} GB each way, "
            f"{result['mb_per_s']} MB/s both ways together",
        ),
        ("JSON calls", f"{result['json_calls']:,}"),
        ("mismatches", str(result["mismatches"])),
        ("errors", str(result["error_count"])),
        (
            "gateway RSS",
            f"{flat['rss_early_mib']} MiB early, {flat['rss_late_mib']} MiB late "
            f"(medians), {flat['rss_max_mib']} MiB at most",
        ),
        ("open descriptors", f"at most {flat['fds_max']}"),
    ]
    return table(("", "measured"), rows)


def floors() -> str:
    result = load("floors")

    def cell(group: str, name: str, digits: int) -> str:
        value = result[group][name]
        low, high = f"{value['min']:.{digits}f}", f"{value['max']:.{digits}f}"
        return f"{value['median']:.{digits}f} ({low}–{high})"

    rows = [
        (name.split(":")[0], cell("small_call", name, 0))
        for name in result["small_call"]
        if name.endswith("cpu_us_per_request")
    ]
    uploads = [
        (name.removesuffix(": CPU s/GB"), cell("upload", name, 2))
        for name in result["upload"]
        if name.endswith("CPU s/GB")
    ]
    return (
        f"{_machine(result['machine'])}; medians of 3 rounds (lowest–highest).\n\n"
        + table(("small call, `GET /engine`", "CPU µs per call"), rows)
        + "\n\n"
        + table(("1 GiB upload", "CPU s/GB"), uploads)
    )


# --- scanning and files in JSON --------------------------------------------------------


def scanning() -> str:
    result = load("scanning")
    rows = [
        (
            "stub" if cell["upstream"] == "stub" else f"engine ({result['engine']}, H2)",
            _size(cell["size_bytes"]),
            cell["mode"],
            f"{cell['mb_per_second']:.0f}",
            _range([cell["size_bytes"] / 1e6 / s for s in cell["seconds"]]),
            _or_dash(cell["gateway_cpu_seconds_per_gb"]),
            _or_dash(cell["gateway_peak_above_idle_mib"]),
            _or_dash(cell["clamd_scan_seconds"], 2),
        )
        for cell in result["cells"]
    ]
    return f"Median of {result['rounds']} rounds.\n\n" + table(
        (
            "upstream",
            "size",
            "path",
            "MB/s",
            "range",
            "gateway CPU s/GB",
            "gateway RSS above idle, MiB",
            "clamd: first byte to verdict, s",
        ),
        rows,
    )


def json_files() -> str:
    result = load("json_files")
    rows = [
        (
            cell["upstream"],
            cell["path"],
            f"{cell['mb_per_second']:.0f}",
            _range([cell["body_bytes"] / 1e6 / s for s in cell["seconds"]]),
            _or_dash(cell["cpu_seconds_per_gb"], 2),
            _or_dash(cell["peak_above_idle_mib"]),
        )
        for cell in result["cells"]
    ]
    body_mb = result["cells"][0]["body_bytes"] / 1e6
    return (
        f"A {result['file_bytes'] / 1e6:.0f} MB File in {body_mb:.1f} MB of JSON; median of "
        f"{result['rounds']} rounds.\n\n"
        + table(
            (
                "upstream",
                "path",
                "MB/s of JSON",
                "range",
                "proxy CPU s/GB",
                "peak RSS above idle, MiB",
            ),
            rows,
        )
    )


# --- endpoints -------------------------------------------------------------------------


def _header(value: str | None) -> str:
    return "*(no header: Tomcat drops it)*" if value is None else code(value)


def download_names() -> str:
    result = load("download_names")
    names = table(
        ("stored name", "the engine sends", "the gateway sends"),
        [
            (
                code(name["filename"].replace("\n", "⏎")),
                _header(name["engine"]),
                _header(name["gateway"]),
            )
            for name in result["names"]
        ],
    )
    latency = table(
        ("download of a small File", "median ms", "p95 ms"),
        [
            (path, f"{value['median_ms']:.2f}", f"{value['p95_ms']:.2f}")
            for path, value in result["latency"].items()
        ],
    )
    return f"{names}\n\nWhat a lookup costs, {result['rounds']} downloads each:\n\n{latency}"


# --- scaling ---------------------------------------------------------------------------


def _failures(outcomes: dict[str, int], seconds: list[float] | None) -> str:
    total = sum(outcomes.values())
    failed = {status: count for status, count in outcomes.items() if status != "200"}
    if not failed:
        return f"{total:,} sent, all 200"
    got = ", ".join(f"{count} got {status}" for status, count in failed.items())
    when = "" if not seconds else ", at " + ", ".join(f"{s:.2f}" for s in seconds) + " s"
    return f"{total:,} sent, **{got}**{when}"


def cluster_failover() -> str:
    runs = [
        load("cluster")[f"failover_refuse_while_engine_down_{switch}"] for switch in ("off", "on")
    ]
    rows = [
        ("GETs", *(_failures(run["outcomes"]["GET"], None) for run in runs)),
        (
            "POSTs",
            *(
                _failures(run["outcomes"]["POST"], run["failures_seconds_after_kill"])
                for run in runs
            ),
        ),
        (
            "dead node's gateway `/readyz` 503 after the kill",
            *(f"{run['kill_to_readyz_503_seconds']} s" for run in runs),
        ),
        (
            "engine started again → ready",
            *(f"{run['revive_to_engine_ready_seconds']} s" for run in runs),
        ),
        (
            "engine started again → nginx sends its gateway requests",
            *(f"{run['revive_to_requests_on_the_revived_pair_seconds']} s" for run in runs),
        ),
    ]
    return table(("", "`off` (the default)", "`on`"), rows)


def cluster_database() -> str:
    database = load("cluster")["database"]

    def cell(result: dict[str, Any], key: str) -> str:
        return f"{result[key + '_median']} s ({_range(result[key], 2)})"

    rows = [
        (name, cell(database[key], "upload_seconds"), cell(database[key], "download_seconds"))
        for name, key in (("PostgreSQL", "postgres"), ("H2", "h2"))
    ]
    return (
        f"A {database['size_bytes'] / 1e6:.0f} MB File through one gateway, median of 3 "
        "(lowest–highest):\n\n" + table(("database", "upload", "download"), rows)
    )


def cluster_throughput() -> str:
    throughput = load("cluster")["throughput"]
    two, one = throughput["through_nginx_two_pairs"], throughput["one_pair_direct"]
    return f"{two['clients']} clients, 20 MB round trips for {two['seconds']:.0f} s:\n\n" + table(
        ("path", "throughput, both ways together"),
        [
            ("through nginx to both pairs", f"{two['mb_per_s_both_ways']} MB/s"),
            ("straight to one pair's gateway", f"{one['mb_per_s_both_ways']} MB/s"),
        ],
    )


# --- documents -------------------------------------------------------------------------

_STORE_NAMES = {"none": "no store", "file": "file store", "s3": "SeaweedFS (S3)"}


def _status(code: int) -> str:
    return {0: "—", 204: "204", 200: "200", 500: "**500**", 404: "404"}.get(code, str(code))


def documents_engine() -> str:
    result = load("documents")
    rows = []
    for case in result["engine_cases"]:
        identical = ", identical" if case["identical"] else ""
        download = _status(case["download_status"]) + (
            identical if case["download_status"] == 200 else ""
        )
        growth = _growth(case["database_growth_bytes"])
        rows.append(
            (
                f"{case['size_bytes'] / 1e6:.0f} MB",
                _STORE_NAMES[case["store"]],
                _status(case["upload_status"]),
                download,
                growth,
                f"{case['engine_peak_rss_mib'] / 1024:.2f} GiB",
            )
        )
    return (
        f"{result['engine']}, {result['engine_heap']} heap, H2; a File by multipart through the "
        "gateway, then downloaded.\n\n"
        + table(
            ("file", "store", "upload", "download", "engine's database", "engine RSS peak"), rows
        )
    )


def documents_five_ways() -> str:
    result = load("documents")
    size = result["transfer_bytes"]
    rows = []
    for row in result["five_ways"]:
        through = "gateway_cpu_s_per_gb_up" in row
        failed = [status for status in row["statuses"] if status >= 400]
        rows.append(
            (
                row["path"],
                f"{row['up_mb_s']}" if not failed else "fails: " + ", ".join(map(str, failed)),
                f"{row['down_mb_s']}" if not failed else "—",
                f"{row['gateway_cpu_s_per_gb_up']} / {row['gateway_cpu_s_per_gb_down']}"
                if through
                else "—",
                f"{row['gateway_peak_rss_mib']}" if through else "—",
                f"{row['engine_peak_rss_mib'] / 1024:.2f} GiB" if through else "—",
                _growth(row["database_growth_bytes"]) if through else "—",
            )
        )
    return (
        f"{_size(size)} up and down, curl, median of {result['rounds']} rounds; "
        f"{_machine(result['machine'])}.\n\n"
        + table(
            (
                "path",
                "up MB/s",
                "down MB/s",
                "gateway CPU s/GB up / down",
                "gateway peak RSS MiB",
                "engine RSS peak",
                "engine's database",
            ),
            rows,
        )
    )


def documents_memory() -> str:
    result = load("documents")
    rows = [
        (
            _STORE_NAMES[row["store"]],
            f"{row['upload_mb_s']} / {row['download_mb_s']}",
            f"{row['gateway_idle_rss_mib']} MiB",
            f"+{row['gateway_growth_mib']} MiB",
        )
        for row in result["memory"]
    ]
    size = result["memory"][0]["size_bytes"] if result["memory"] else 0
    return f"{_size(size)} up, then down, through the gateway:\n\n" + table(
        ("store", "MB/s up / down", "gateway RSS at idle", "growth at its peak"), rows
    )


def documents_api_transfers() -> str:
    result = load("documents_api")
    rows = [
        (
            _STORE_NAMES[row["store"]],
            row["path"],
            row["direction"],
            ", ".join(map(str, row["statuses"])),
            str(row["mb_s"]),
            str(row["gateway_cpu_s_per_gb"]) if "gateway_cpu_s_per_gb" in row else "—",
            str(row["gateway_peak_rss_mib"]) if "gateway_peak_rss_mib" in row else "—",
        )
        for row in result["transfers"]
    ]
    return (
        f"{_size(result['transfer_bytes'])}, curl, median of {result['rounds']} rounds; "
        f"{_machine(result['machine'])}.\n\n"
        + table(
            (
                "store",
                "path",
                "way",
                "status",
                "MB/s",
                "gateway CPU s/GB",
                "gateway peak RSS MiB",
            ),
            rows,
        )
    )


def documents_api_small() -> str:
    result = load("documents_api")
    rows = [
        (
            _STORE_NAMES[row["store"]],
            row["path"],
            f"{row['median_ms']:g}",
            f"{row['p95_ms']:g}",
        )
        for row in result["small_reads"]
    ]
    count = result["small_reads"][0]["requests"] if result["small_reads"] else 0
    return f"A 10 KB document read {count} times in a row, one connection:\n\n" + table(
        ("store", "read", "median ms", "p95 ms"), rows
    )


MIB_BYTES = 1 << 20


def _growth(size_bytes: int) -> str:
    if size_bytes >= MIB_BYTES:
        return f"+{size_bytes / MIB_BYTES:.0f} MiB"
    return f"+{size_bytes / 1024:.0f} KiB"
