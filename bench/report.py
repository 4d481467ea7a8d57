"""The tables and chart of `make bench`, from bench/results/compare.json: the chart to
docs/compare.png, and the tables (`markdown`) into docs/performance.md, which `make docs`
writes with every other generated part (docs/generate.py).

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "compare.json"
MIB, GIB = 1 << 20, 1 << 30
PATHS = ("direct", "gateway", "nginx-default", "nginx-tuned", "nginx+gateway")
CHART_CELLS = ((100 * MIB, 1), (GIB, 1), (100 * MIB, 10), (GIB, 10), (MIB, 100))

Case = dict[str, Any]


def size_name(size: int) -> str:
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def _index(cases: Iterable[Case]) -> dict[tuple[str, str, int, int], Case]:
    return {(c["path"], c["direction"], c["size"], c["concurrency"]): c for c in cases}


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}x" if base else "-"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def stub_table(result: dict[str, Any]) -> list[str]:
    cases = result["stub"]["cases"]
    index = _index(cases)
    cells = sorted({(c["direction"], c["size"], c["concurrency"]) for c in cases},
                   key=lambda cell: (cell[0] != "download", cell[1], cell[2]))  # fmt: skip
    lines = [
        "| direction | size x streams | direct | gateway | vs direct | vs nginx-tuned "
        "| nginx-default | nginx-tuned | nginx+gateway | gateway CPU s/GB "
        "| nginx-tuned CPU s/GB | gateway peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for direction, size, concurrency in cells:
        got = {path: index.get((path, direction, size, concurrency)) for path in PATHS}

        def mb_s(path: str, cell: dict[str, Case | None] = got) -> str:
            case = cell[path]
            return "-" if case is None else f"{case['mb_s']:.0f}"

        gateway, direct, tuned = got["gateway"], got["direct"], got["nginx-tuned"]
        assert gateway is not None
        direct_mb_s = None if direct is None else direct["mb_s"]
        tuned_mb_s = None if tuned is None else tuned["mb_s"]
        tuned_cpu = None if tuned is None else tuned["proxy_cpu_s_per_gb"]
        lines.append(
            f"| {direction} | {size_name(size)} x {concurrency} | {mb_s('direct')} "
            f"| **{mb_s('gateway')}** | {_ratio(gateway['mb_s'], direct_mb_s)} "
            f"| {_ratio(gateway['mb_s'], tuned_mb_s)} | {mb_s('nginx-default')} "
            f"| {mb_s('nginx-tuned')} | {mb_s('nginx+gateway')} "
            f"| {_number(gateway['proxy_cpu_s_per_gb'])} | {_number(tuned_cpu)} "
            f"| {_number(gateway['proxy_peak_rss_mib'], 1)} MiB |"
        )
    return lines


def engine_tables(result: dict[str, Any]) -> list[str]:
    engine = result["real_engine"]
    transfers = {t["path"]: t for t in engine["transfers"]}
    direct = transfers["direct"]
    size = direct["bytes"] / 1e6
    lines = [
        f"Real engine ({engine['engine']}, H2), one {size:.0f} MB Bytes variable up and down "
        "(curl), median of 3 after a warm-up:",
        "",
        "| path | upload s | download s | wall time added, up / down |",
        "|---|---|---|---|",
    ]
    for path, t in transfers.items():
        slower = [
            f"{(t[k] / direct[k] - 1) * 100:+.1f}%" if path != "direct" else "-"
            for k in ("upload_seconds", "download_seconds")
        ]
        lines.append(
            f"| {path} | {t['upload_seconds']:.3f} | {t['download_seconds']:.3f} "
            f"| {' / '.join(slower)} |"
        )
    lines += [
        "",
        "Small JSON calls against the real engine (wrk):",
        "",
        "| call | connections | path | p50 ms | p99 ms | requests/s | p50 added |",
        "|---|---|---|---|---|---|---|",
    ]
    calls = engine["json"]
    base = {(c["call"], c["concurrency"]): c for c in calls if c["path"] == "direct"}
    for c in calls:
        direct_call = base[(c["call"], c["concurrency"])]
        added = "-" if c["path"] == "direct" else f"{c['p50_ms'] - direct_call['p50_ms']:+.2f} ms"
        lines.append(
            f"| `{c['call']}` | {c['concurrency']} | {c['path']} | {c['p50_ms']:.2f} "
            f"| {c['p99_ms']:.2f} | {c['requests_per_s']:.0f} | {added} |"
        )
    return lines


# The #21 goals: (ratio's name, how it reads, the goal's bound, whether lower is better).
GOALS = (
    ("download wall vs direct", "{size} chunked download, wall time vs direct", 1.05, True),
    ("download wall vs nginx", "the same, vs tuned nginx", 1.0, True),
    ("download CPU vs nginx", "the same, proxy CPU per GB vs tuned nginx", 1.0, True),
    ("task query req/s at 32 vs nginx",
     "`GET /task?maxResults=20`, 32 connections, req/s vs nginx", 0.9, False),
    ("engine req/s at 32 vs nginx", "`GET /engine`, 32 connections, req/s vs nginx", 0.5, False),
    ("task query p50 added at 1 (ms)",
     "`GET /task?maxResults=20`, p50 added at 1 connection (ms)", 0.3, True),
    ("engine p50 added at 1 (ms)", "`GET /engine`, p50 added at 1 connection (ms)", 0.3, True),
)  # fmt: skip


def cases_tables(cases: dict[str, Any]) -> list[str]:
    """bench/engine_cases.py: the goals' ratios with their spread, then the figures."""
    rounds = len({case["round"] for case in cases["rounds"]})
    gateways = list(dict.fromkeys(c["path"] for c in cases["rounds"]))[2:]
    lines = [
        f"Real engine ({cases['engine']}, H2), side by side in {rounds} rounds: direct, tuned "
        f"nginx and the gateway (its defaults, and each lever switched) in front of the same "
        f"engine, and for small calls the least an aiohttp gateway pays (aiohttp floor, "
        f"bench/aiohttp_floor.py); each cell is the median over the rounds, (lowest to highest):",
        "",
        "| goal | bound | " + " | ".join(gateways) + " |",
        "|---|---|" + "---|" * len(gateways),
    ]
    ratios = cases["ratios"]
    for key, reads, bound, lower in GOALS:
        cells = []
        for path in gateways:
            spread = ratios.get(f"{path}: {key}")
            if spread is None:
                cells.append("-")
                continue
            met = spread["median"] <= bound if lower else spread["median"] >= bound
            shown = f"{spread['median']:.2f} ({spread['min']:.2f} to {spread['max']:.2f})"
            cells.append(f"{shown} \\*" if met else shown)
        sign = "≤" if lower else "≥"
        shown_reads = reads.format(size=f"{cases['download_bytes'] / 1e6:g} MB")
        lines.append(f"| {shown_reads} | {sign} {bound} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Starred: the goal met at the median. The figures behind them, medians over the rounds:",
        "",
        "| path | download s | CPU s/GB | `/engine` req/s at 32 | p50 ms at 1 "
        "| task query req/s at 32 | p50 ms at 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in dict.fromkeys(c["path"] for c in cases["rounds"]):
        mine = [c for c in cases["rounds"] if c["path"] == path]

        def median(pick: Any, of: list[dict[str, Any]] = mine) -> str:
            values = sorted(v for v in (pick(c) for c in of) if v is not None)
            return "-" if not values else f"{values[len(values) // 2]:g}"

        lines.append(
            f"| {path} | {median(lambda c: c.get('download', {}).get('wall_seconds'))} "
            f"| {median(lambda c: c.get('download', {}).get('cpu_s_per_gb'))} "
            f"| {median(lambda c: c['engine']['32']['requests_per_s'])} "
            f"| {median(lambda c: c['engine']['1']['p50_ms'])} "
            f"| {median(lambda c: c['task query']['32']['requests_per_s'])} "
            f"| {median(lambda c: c['task query']['1']['p50_ms'])} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    alone = result["client_alone"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}, nginx {m['nginx']}, curl {m['curl']}; the gateway on "
        f"{result['gateway']['event_loop']} with splice {result['gateway']['splice']}; "
        "client, upstream and "
        f"proxy share the cores. Whole run: {result['wall_seconds']} s. MB/s are 10⁶ bytes "
        "per second over the whole transfer (all streams); CPU is the proxy's user + system "
        "time per GB moved; peak RSS is the proxy's VmHWM during the case.",
        "",
        f"The client alone (curl, direct to the stub, {size_name(alone['size'])}): "
        f"{alone['download_mb_s']:.0f} MB/s down, {alone['upload_mb_s']:.0f} MB/s up.",
        "",
        "Stub upstream (aiohttp, not an engine: files by sendfile, a sink reading whole bodies):",
        "",
        *stub_table(result),
        "",
        *engine_tables(result),
    ]
    if "cases" in result["real_engine"]:
        lines += ["", *cases_tables(result["real_engine"]["cases"])]
    return "\n".join(lines)


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = _index(result["stub"]["cases"])
    present = [cell for cell in CHART_CELLS if ("gateway", "download", *cell) in index]
    if not present:
        present = sorted({(c["size"], c["concurrency"]) for c in result["stub"]["cases"]})
    cases = result.get("real_engine", {}).get("cases")
    panels = 3 if cases else 2
    figure, all_axes = plt.subplots(
        1, panels, figsize=(6.5 * panels, 4.5), gridspec_kw={"width_ratios": [1] * panels}
    )
    axes = all_axes[:2]
    axes[1].sharey(axes[0])
    width = 0.8 / len(PATHS)
    for axis, direction in zip(axes, ("download", "upload"), strict=True):
        for offset, name in enumerate(PATHS):
            values = [index.get((name, direction, *cell), {"mb_s": 0})["mb_s"] for cell in present]
            positions = [i + offset * width for i in range(len(present))]
            axis.bar(positions, values, width, label=name, color=_color(name))
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(present))])
        axis.set_xticklabels([f"{size_name(s)} x {c}" for s, c in present])
        axis.set_title(f"{direction} (stub upstream)")
        axis.set_ylabel("MB/s")
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend()
    if cases:
        _cases_panel(all_axes[2], cases)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _color(path: str) -> str:
    """One colour a path in every panel; the gateway's variants after the five paths."""
    palette: list[str] = [f"C{i}" for i in range(10)]
    variants = ("gateway --event-loop uvloop", "gateway --workers 2", "gateway --relay off")
    named = (*PATHS, *variants)
    return palette[named.index(path) % 10] if path in named else "C9"


def _download_rate(case: dict[str, Any]) -> float:
    # The aiohttp floor measures small calls only: no download bar.
    return 1 / case["download"]["wall_seconds"] if "download" in case else 0.0


def _cases_panel(axis: Any, cases: dict[str, Any]) -> None:
    """The real engine: each path's median over the rounds, as a share of direct's."""
    paths = list(dict.fromkeys(c["path"] for c in cases["rounds"]))
    measures = {
        "download\n(1 / wall)": _download_rate,
        "/engine\nreq/s at 32": lambda c: c["engine"]["32"]["requests_per_s"],
        "task query\nreq/s at 32": lambda c: c["task query"]["32"]["requests_per_s"],
    }
    width = 0.8 / len(paths)
    for offset, path in enumerate(paths):
        shares = []
        for pick in measures.values():

            def median(of: str, pick: Any = pick) -> float:
                values = sorted(pick(c) for c in cases["rounds"] if c["path"] == of)
                return float(values[len(values) // 2])

            shares.append(median(path) / median("direct"))
        positions = [i + offset * width for i in range(len(measures))]
        axis.bar(positions, shares, width, label=path, color=_color(path))
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(measures))])
    axis.set_xticklabels(list(measures))
    axis.set_title(f"real engine ({cases['engine']}): share of direct")
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=7)


def main() -> int:
    from docs import generate  # docs.figures imports this module

    chart(json.loads(RESULTS.read_text()), ROOT / "docs" / "compare.png")
    for page in generate.write():
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
