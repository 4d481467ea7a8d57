"""`make docs`: the parts of README.md and docs/ that the code and the benchmarks' results
already know, written from them.

A generated part sits between `<!-- generated: NAME -->` and `<!-- /generated: NAME -->` on
its page; the rest of the page is prose, written by hand. Every part named in PARTS must be
on its page exactly once, and every marker on a page must be in PARTS.

    .venv/bin/python -m docs.generate           # writes the parts
    .venv/bin/python -m docs.generate --check   # exits 1 naming the parts that differ

tests/unit/test_docs.py runs the check, so a flag, a route, a door, a metric or a results
file changed without `make docs` fails `make test`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from docs import figures, reference

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Part:
    page: str  # relative to the repository's root
    name: str
    render: Callable[[], str]


PARTS = (
    Part("README.md", "headline", figures.headline),
    Part("docs/configuration.md", "options", reference.options_table),
    Part("docs/endpoints.md", "binary-routes", reference.binary_routes_table),
    Part("docs/endpoints.md", "download-names", figures.download_names),
    Part("docs/endpoints.md", "json-doors", reference.json_doors_table),
    Part("docs/security.md", "json-doors-by-label", reference.json_doors_by_label),
    Part("docs/monitoring.md", "metrics", reference.metrics_table),
    Part("docs/monitoring.md", "label-values", reference.label_values_table),
    Part("docs/monitoring.md", "runtime-metrics", reference.runtime_metrics_table),
    Part("docs/monitoring.md", "alerts", reference.alerts_table),
    Part("docs/monitoring.md", "dashboard-panels", reference.dashboard_panels),
    Part("docs/scanning.md", "scanning-figures", figures.scanning),
    Part("docs/files-in-json.md", "json-files-figures", figures.json_files),
    Part("docs/performance.md", "headline", figures.headline),
    Part("docs/performance.md", "compare", figures.compare),
    Part("docs/performance.md", "streams", figures.streams),
    Part("docs/performance.md", "memory", figures.memory),
    Part("docs/performance.md", "soak", figures.soak),
    Part("docs/performance.md", "floors", figures.floors),
    Part("docs/scaling.md", "cluster-failover", figures.cluster_failover),
    Part("docs/scaling.md", "cluster-database", figures.cluster_database),
    Part("docs/scaling.md", "cluster-throughput", figures.cluster_throughput),
    Part("docs/development.md", "make-targets", reference.make_targets_table),
    Part("docs/documents.md", "documents-engine", figures.documents_engine),
    Part("docs/documents.md", "documents-five-ways", figures.documents_five_ways),
    Part("docs/documents.md", "documents-memory", figures.documents_memory),
    Part("docs/documents.md", "documents-api-transfers", figures.documents_api_transfers),
    Part("docs/documents.md", "documents-api-small", figures.documents_api_small),
)

_MARKER = re.compile(r"<!-- (/?)generated: ([\w-]+) -->")


class PageError(ValueError):
    """A page whose markers do not match PARTS."""


def begin(name: str) -> str:
    return f"<!-- generated: {name} -->"


def end(name: str) -> str:
    return f"<!-- /generated: {name} -->"


def markers(text: str) -> list[str]:
    """The names of the parts a page holds, in order; each must open and close once."""
    names: list[str] = []
    open_name: str | None = None
    for match in _MARKER.finditer(text):
        closing, name = match.group(1) == "/", match.group(2)
        if closing != (open_name is not None) or (closing and name != open_name):
            raise PageError(f"unbalanced marker {match.group(0)}")
        if closing:
            open_name = None
        else:
            if name in names:
                raise PageError(f"part {name} appears twice")
            names.append(name)
            open_name = name
    if open_name is not None:
        raise PageError(f"part {open_name} is never closed")
    return names


def replaced(text: str, name: str, body: str) -> str:
    """`text` with the part `name` holding `body`."""
    before, rest = text.split(begin(name), 1)
    _, after = rest.split(end(name), 1)
    return f"{before}{begin(name)}\n{body.strip()}\n{end(name)}{after}"


def rendered_pages(root: Path = ROOT) -> dict[str, tuple[str, str]]:
    """Each page with a part: (its text now, its text with every part rendered)."""
    pages: dict[str, tuple[str, str]] = {}
    for page in dict.fromkeys(part.page for part in PARTS):
        text = (root / page).read_text()
        expected = {part.name for part in PARTS if part.page == page}
        found = markers(text)
        if set(found) != expected:
            raise PageError(
                f"{page}: parts {sorted(set(found) - expected)} are not generated, "
                f"{sorted(expected - set(found))} are missing"
            )
        new = text
        for part in PARTS:
            if part.page == page:
                new = replaced(new, part.name, part.render())
        pages[page] = (text, new)
    return pages


def stale(root: Path = ROOT) -> list[str]:
    """The pages whose generated parts differ from what the code says."""
    return [page for page, (old, new) in rendered_pages(root).items() if old != new]


def write(root: Path = ROOT) -> list[str]:
    changed = []
    for page, (old, new) in rendered_pages(root).items():
        if old != new:
            (root / page).write_text(new)
            changed.append(page)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    arguments = parser.parse_args(argv)
    if arguments.check:
        pages = stale()
        for page in pages:
            print(f"{page}: generated parts are out of date; run make docs", file=sys.stderr)
        return 1 if pages else 0
    for page in write():
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
