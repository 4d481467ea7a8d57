"""The engine's binary endpoints, as a table: path pattern → what kind of transfer it is.

Everything under /engine-rest is proxied; this table only says which requests carry binary
bodies, so the proxy can treat them as streams (and, later, validate or rename them).
Paths are matched in their raw (percent-encoded) form, after /engine-rest and an optional
/engine/{name}, so a variable name is decoded exactly once, as the engine does.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

API_ROOT = "/engine-rest"


class Kind(enum.Enum):
    PASSTHROUGH = "passthrough"
    DOWNLOAD = "download"
    UPLOAD = "upload"


@dataclass(frozen=True)
class BinaryRoute:
    label: str  # bounded name for logs and metric labels
    pattern: re.Pattern[str]
    download: bool
    upload: bool


@dataclass(frozen=True)
class RouteMatch:
    label: str
    kind: Kind


_SEGMENT = r"[^/]+"


def _route(label: str, path: str, *, download: bool, upload: bool) -> BinaryRoute:
    regex = path.replace("{id}", _SEGMENT).replace("{name}", _SEGMENT)
    return BinaryRoute(label, re.compile(f"^/{regex}$"), download=download, upload=upload)


BINARY_ROUTES = (
    _route(
        "variable_data", "process-instance/{id}/variables/{name}/data", download=True, upload=True
    ),
    _route(
        "variable_data", "execution/{id}/localVariables/{name}/data", download=True, upload=True
    ),
    _route("variable_data", "task/{id}/variables/{name}/data", download=True, upload=True),
    _route("variable_data", "task/{id}/localVariables/{name}/data", download=True, upload=True),
    _route("variable_data", "case-instance/{id}/variables/{name}/data", download=True, upload=True),
    _route(
        "variable_data", "case-execution/{id}/variables/{name}/data", download=True, upload=True
    ),
    _route(
        "variable_data",
        "case-execution/{id}/localVariables/{name}/data",
        download=True,
        upload=True,
    ),
    _route("variable_data", "variable-instance/{id}/data", download=True, upload=False),
    _route("history_data", "history/variable-instance/{id}/data", download=True, upload=False),
    _route("history_data", "history/detail/{id}/data", download=True, upload=False),
    _route("deployment", "deployment/{id}/resources/{id}/data", download=True, upload=False),
    _route("deployment", "deployment/create", download=False, upload=True),
    _route("attachment", "task/{id}/attachment/{id}/data", download=True, upload=False),
    _route("attachment", "task/{id}/attachment/create", download=False, upload=True),
)

PASSTHROUGH = RouteMatch("passthrough", Kind.PASSTHROUGH)

_NAMED_ENGINE = re.compile(r"^/engine/[^/]+(?=/)")


def resource_path(raw_path: str) -> str | None:
    """The path below /engine-rest (and below /engine/{name}), or None if outside the API."""
    if raw_path == API_ROOT:
        return ""
    if not raw_path.startswith(API_ROOT + "/"):
        return None
    below = raw_path[len(API_ROOT) :]
    return _NAMED_ENGINE.sub("", below, count=1)


def classify(method: str, raw_path: str) -> RouteMatch:
    below = resource_path(raw_path)
    if below is None:
        return PASSTHROUGH
    for route in BINARY_ROUTES:
        if not route.pattern.match(below):
            continue
        if route.download and method in ("GET", "HEAD"):
            return RouteMatch(route.label, Kind.DOWNLOAD)
        if route.upload and method == "POST":
            return RouteMatch(route.label, Kind.UPLOAD)
        if route.upload and method == "PUT" and route.label == "variable_data":
            # `curl -T file …/data`: the gateway's raw upload, sent to the engine as POST.
            return RouteMatch(route.label, Kind.UPLOAD)
    return PASSTHROUGH


def escapes_api_root(raw_path: str) -> bool:
    """True when the path, once the engine's servlet container decodes and normalises it,
    could point outside /engine-rest (dot segments, literal or percent-encoded)."""
    decoded = re.sub("%2[eE]", ".", raw_path)
    segments = re.split(r"/|%2[fF]|\\|%5[cC]", decoded)
    return resource_path(raw_path) is None or any(s in (".", "..") for s in segments)
