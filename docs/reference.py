"""The reference tables the code already knows: each one is built here from the definitions
the gateway runs on (the CLI's options, the route table, the metrics registry, the alert
rules, the dashboard, the Makefile), so the pages cannot drift from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from gateway import documentsapi, metrics
from gateway.__main__ import OPTIONS, parse_config
from gateway.routes import (
    BINARY_ROUTES,
    JSON_DOORS,
    PASSTHROUGH,
    JsonDoor,
    ResourceLookup,
    ScopeLookup,
)

ROOT = Path(__file__).resolve().parent.parent


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    names = list(header)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def code(text: str) -> str:
    return f"`{text}`"


def _cell(text: str) -> str:
    """Prose in a table cell, on one line: a `|` would end the cell, and outside code spans
    a `<name>` would be taken for an HTML tag."""
    spans = " ".join(text.split()).replace("|", "\\|").split("`")
    for index in range(0, len(spans), 2):  # the even pieces are outside code spans
        spans[index] = spans[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(spans)


# --- configuration ---------------------------------------------------------------------


def options_table() -> str:
    defaults = parse_config([], {})
    rows = []
    for option in OPTIONS:
        default = getattr(defaults, option.field)
        shown = code(str(default)) if str(default) != "" else "*(none)*"
        meaning = option.help
        if option.choices:
            meaning += "; one of " + ", ".join(code(choice) for choice in option.choices)
        rows.append((code(option.flag), code(option.env), shown, _cell(meaning)))
    return table(("flag", "environment", "default", "meaning"), rows)


# --- endpoints -------------------------------------------------------------------------


def _lookup(lookup: ScopeLookup | ResourceLookup | None, path: str) -> str:
    if lookup is None:
        return "—"
    if isinstance(lookup, ResourceLookup):
        bare = path.removesuffix("/data")
        return f"`GET /{bare}` (`?deserializeValue=false`)"
    query = f"`GET /variable-instance?variableName=…&{lookup.scope_filter}={{id}}`"
    if lookup.inherited_from is None:
        return query
    return (
        f"{query}; if it is not there, `GET /{lookup.inherited_from}/{{id}}` and the same "
        "query in its instance"
    )


def binary_routes_table() -> str:
    rows = []
    for route in BINARY_ROUTES:
        methods = []
        if route.download:
            methods.append("GET, HEAD: download")
        if route.upload:
            raw = ", PUT (raw)" if route.label == "variable_data" else ""
            methods.append(f"POST{raw}: upload")
        rows.append(
            (
                code(route.path),
                "; ".join(methods),
                code(route.label),
                _lookup(route.lookup, route.path),
            )
        )
    return table(("path below the API root", "methods", "route label", "name looked up by"), rows)


def door_path(door: JsonDoor) -> str:
    return "/" + door.path


def _places(places: Iterable[tuple[str, ...]]) -> str:
    shown = [".".join(place).replace(".[]", "[]") or "." for place in places]
    return ", ".join(code(place) for place in shown) or "—"


def json_doors_table() -> str:
    """Every door, where its File and Bytes values are."""
    rows = [
        (code(door.label), door.method, code(door_path(door)), _places(door.up), _places(door.down))
        for door in JSON_DOORS
    ]
    return table(
        (
            "route label",
            "method",
            "path below the API root",
            "File and Bytes values in the request",
            "in the answer",
        ),
        rows,
    )


def json_doors_by_label() -> str:
    """The doors by route label, requests first, then answers."""
    lines = []
    for label in dict.fromkeys(door.label for door in JSON_DOORS):
        doors = [door for door in JSON_DOORS if door.label == label]
        up = [f"{door.method} `{door_path(door)}`" for door in doors if door.up]
        down = [f"{door.method} `{door_path(door)}`" for door in doors if door.down]
        line = f"- `{label}`: " + ("; ".join(up) if up else "no request door")
        if down:
            line += "; answers: " + "; ".join(down)
        lines.append(line)
    return "\n".join(lines)


def route_labels() -> tuple[str, ...]:
    labels = [route.label for route in BINARY_ROUTES] + [door.label for door in JSON_DOORS]
    return (*dict.fromkeys(labels), PASSTHROUGH.label, *documentsapi.route_labels())


# --- monitoring ------------------------------------------------------------------------

OWN_PREFIX = "engine_gateway_"
# prometheus-client adds these suffixes to a family's samples.
_SAMPLE_SUFFIX = {"counter": "_total", "info": "_info"}


def metrics_table() -> str:
    """The gateway's own families, from the registry it serves."""
    created = metrics.create()
    # The label names of a family with no child yet are the collector's own (prometheus-
    # client keeps them private); the build info has its one sample.
    label_names = {
        collector._name: collector._labelnames
        for collector in vars(created).values()
        if isinstance(collector, MetricWrapperBase)
    }
    rows = []
    for family in created.registry.collect():
        if not family.name.startswith(OWN_PREFIX):
            continue
        names = label_names.get(family.name) or tuple(family.samples[0].labels)
        labels = ", ".join(code(label) for label in names) or "—"
        name = family.name + _SAMPLE_SUFFIX.get(family.type, "")
        rows.append((code(name), family.type, labels, _cell(family.documentation)))
    return table(("metric", "type", "labels", "what"), rows)


def label_values_table() -> str:
    rows = [
        ("any that has it" if family == "*" else code(family), code(label), _values(values))
        for family, label, values in metrics.LABEL_VALUES
    ]
    rows.append(("any that has it", code("route"), _values(route_labels())))
    return table(("on", "label", "values"), rows)


def _values(values: Iterable[str]) -> str:
    return ", ".join(code(value) for value in values)


def runtime_metrics_table() -> str:
    """prometheus-client's process, platform and GC families, as a single process has them."""
    rows = []
    for family in metrics.create().registry.collect():
        if family.name.startswith(OWN_PREFIX):
            continue
        name = family.name + _SAMPLE_SUFFIX.get(family.type, "")
        rows.append((code(name), family.type, _cell(family.documentation)))
    return table(("metric", "type", "what"), rows)


# Prometheus' templating in an annotation, e.g. {{ $labels.instance }}.
_TEMPLATE = re.compile(r"\{\{[^}]*\}\}")


def alerts_table() -> str:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    rows = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            rows.append(
                (
                    code(rule["alert"]),
                    _cell(_TEMPLATE.sub("the instance", rule["annotations"]["description"])),
                    rule.get("for", "—"),
                    rule["labels"]["severity"],
                )
            )
    return table(("alert", "when", "for", "severity"), rows)


def dashboard_panels() -> str:
    dashboard = json.loads((ROOT / "grafana/dashboards/engine-gateway.json").read_text())
    titles = [panel["title"] for panel in dashboard["panels"] if panel.get("type") != "row"]
    return "\n".join(f"- {title}" for title in titles)


# --- development -----------------------------------------------------------------------

_TARGET = re.compile(r"^([a-z][\w-]*):")
# Lines that may stand between a target and the comment that describes it.
_SETTING = re.compile(r"^([A-Z_]+\s*[:?]?=|\.PHONY)")


def make_targets_table() -> str:
    """Each target of the Makefile with the comment block above it."""
    rows = []
    comment: list[str] = []
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("# ").strip())
            continue
        if _SETTING.match(line):
            continue
        target = _TARGET.match(line)
        if target and comment:
            rows.append((code("make " + target.group(1)), _cell(" ".join(comment))))
        comment = []
    return table(("target", "what"), rows)
