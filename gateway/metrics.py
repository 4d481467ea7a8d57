"""Prometheus metrics: what moves through the gateway, counted as it moves.

prometheus-client does the bookkeeping and the exposition format; this module only names
the collectors and feeds them. Each application gets its own registry (so two gateways in
one process, as in tests, never share counts). Labels are bounded by construction: the
route table's label, the method (the engine's few, anything else is `other`), a status
class and an outcome, never ids, names, paths, users or addresses.

With several worker processes (workers.py) prometheus-client's multiprocess mode keeps the
values in files, one set per worker, and a scrape adds them up: the collectors are then
registered nowhere, and the exposed registry holds only the collector of those files. The
process, platform and garbage-collector collectors are left out there, since they would
describe only the worker that happened to answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

OUTCOMES = ("complete", "client_abort", "upstream_abort", "timeout", "rejected", "drain_abort")
DIRECTIONS = ("upload", "download")
# How a clamd scan ended; failed_*: clamd gave no verdict, and --clamd-failure decided.
SCAN_OUTCOMES = ("clean", "found", "failed_closed", "failed_open")
# Which way a scanned file came: a multipart form, a raw body, a typed value in JSON, or a
# binary download (…/data), or the documents API.
SCAN_DOORS = ("multipart", "raw", "json", "data", "documents")
# The engine's binary types, as files in JSON are counted.
JSON_FILE_TYPES = ("File", "Bytes")
DIGEST_FIELDS = ("Repr-Digest", "Content-Digest")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
# The doors a value is offloaded at (offload.py).
OFFLOAD_DOORS = ("raw", "multipart", "json")
# How a download that may be a reference ended (resolve.py): served from the store, its
# record deleted, its content missing, not signed by a document key, the store failing.
RESOLVED_OUTCOMES = ("document", "not_found", "missing", "forged", "store_error")
# What the gateway asks of the document store (store.py), and how it ended.
STORE_OPERATIONS = (
    "upload",
    "commit",
    "put_record",
    "get_record",
    "head",
    "read",
    "delete",
    "list",
    "sign",
)
STORE_OUTCOMES = ("ok", "error")
# How a documents API call ended (documentsapi.py): ok, partial (a batch with failed
# files), or why it was refused.
DOCUMENT_API_RESULTS = (
    "ok",
    "partial",
    "unauthenticated",
    "forbidden",
    "invalid",
    "exists",
    "not_found",
    "expired",
    "missing",
    "malware",
    "scan_unavailable",
    "digest_mismatch",
    "variable_document",
    "link_altered",
    "link_expired",
    "store_error",
)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
# Every label's values but the route's (routes.py has those), by the family it is on:
# docs/monitoring.md lists them.
LABEL_VALUES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("*", "direction", DIRECTIONS),
    ("*", "method", (*sorted(METHODS), "other")),
    ("engine_gateway_requests_total", "status_class", STATUS_CLASSES),
    ("engine_gateway_requests_total", "outcome", OUTCOMES),
    ("engine_gateway_scans_total", "door", SCAN_DOORS),
    ("engine_gateway_scans_total", "outcome", SCAN_OUTCOMES),
    ("engine_gateway_json_files_total", "type", JSON_FILE_TYPES),
    ("engine_gateway_digest_mismatches_total", "field", DIGEST_FIELDS),
    ("engine_gateway_offloaded_total", "door", OFFLOAD_DOORS),
    ("engine_gateway_resolved_total", "outcome", RESOLVED_OUTCOMES),
    ("engine_gateway_store_operations_total", "operation", STORE_OPERATIONS),
    ("engine_gateway_store_operations_total", "outcome", STORE_OUTCOMES),
    ("engine_gateway_document_api_calls_total", "result", DOCUMENT_API_RESULTS),
)

# Seconds: a JSON call takes milliseconds, a 4 GiB transfer minutes.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
)  # fmt: skip
# Bytes: 1 KiB … 4 GiB in steps of 4.
SIZE_BUCKETS = tuple(float(1024 * 4**step) for step in range(12))

Increment = Callable[[float], None]

# prometheus-client's switch to multiprocess mode, read when it is first imported.
SHARED_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _ignore(_: float) -> None:
    return None


@dataclass(frozen=True)
class Metrics:
    enabled: bool  # off: nothing is counted (to measure what counting costs)
    registry: CollectorRegistry  # what /metrics exposes
    transferred: Counter
    requests: Counter
    duration: Histogram
    first_byte: Histogram
    size: Histogram
    in_flight: Gauge
    streams: Gauge
    upstream_ready: Gauge
    scans: Counter
    scan_duration: Histogram
    scanned: Counter
    digest_mismatches: Counter
    json_files: Counter
    json_file_bytes: Counter
    store_bytes: Counter
    offloaded: Counter
    resolved: Counter
    store_operations: Counter
    store_duration: Histogram
    document_calls: Counter
    # Labelled children by label values: prometheus-client's labels() validates and locks
    # on every call, which a small request would pay six times over.
    _children: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        key = (str(id(metric)), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def bytes_counter(self, direction: str, route: str) -> Increment:
        """The per-chunk increment for one request, with its labels bound once."""
        if not self.enabled:
            return _ignore
        increment: Increment = self._child(self.transferred, direction, route).inc
        return increment

    def scanned_bytes_counter(self, direction: str) -> Increment:
        if not self.enabled:
            return _ignore
        increment: Increment = self._child(self.scanned, direction).inc
        return increment

    def scan_finished(
        self, direction: str, door: str, outcome: str, duration_seconds: float
    ) -> None:
        if not self.enabled:
            return
        self._child(self.scans, direction, door, outcome).inc()
        self._child(self.scan_duration, direction).observe(duration_seconds)

    def json_file(self, direction: str, route: str, type_name: str, size_bytes: int) -> None:
        """A File or Bytes value carried in a JSON body, `size_bytes` once decoded."""
        if self.enabled:
            self._child(self.json_files, direction, route, type_name).inc()
            self._child(self.json_file_bytes, direction, route).inc(size_bytes)

    def store_bytes_counter(self, direction: str) -> Increment:
        """Per chunk: into the document store (upload) or out of it (download)."""
        if not self.enabled:
            return _ignore
        increment: Increment = self._child(self.store_bytes, direction).inc
        return increment

    def offload(self, door: str, count: int = 1) -> None:
        if self.enabled and count:
            self._child(self.offloaded, door).inc(count)

    def resolution(self, outcome: str) -> None:
        if self.enabled:
            self._child(self.resolved, outcome).inc()

    def store_operation(self, operation: str, duration_seconds: float, *, ok: bool) -> None:
        if self.enabled:
            self._child(self.store_operations, operation, "ok" if ok else "error").inc()
            self._child(self.store_duration, operation).observe(duration_seconds)

    def document_call(self, operation: str, result: str) -> None:
        if self.enabled:
            self._child(self.document_calls, operation, result).inc()

    def digest_mismatch(self, field_name: str) -> None:
        if self.enabled:
            self._child(self.digest_mismatches, field_name).inc()

    def finished(
        self,
        *,
        method: str,
        route: str,
        status: int,
        outcome: str,
        duration_seconds: float,
        first_byte_seconds: float | None,
        size: tuple[str, int] | None,
    ) -> None:
        if not self.enabled:
            return
        method = method if method in METHODS else "other"
        self._child(self.requests, method, route, status_class(status), outcome).inc()
        self._child(self.duration, method, route).observe(duration_seconds)
        if first_byte_seconds is not None:
            self._child(self.first_byte, method, route).observe(first_byte_seconds)
        if size is not None:
            direction, transferred = size
            self._child(self.size, direction, route).observe(transferred)


def status_class(status: int) -> str:
    # 499 (client left) is ours, not the engine's: still a 4xx, like nginx counts it.
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def version() -> str:
    try:
        return package_metadata.version("engine-gateway")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def create(*, enabled: bool = True, shared: bool = False) -> Metrics:
    """The collectors; `shared`: added up across worker processes (see the docstring)."""
    registry = CollectorRegistry(auto_describe=True)
    if shared:
        MultiProcessCollector(registry, path=os.environ[SHARED_DIR_ENV])  # type: ignore[no-untyped-call]
    elif enabled:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    # The same in every worker, so it is kept out of the shared files.
    Info("engine_gateway_build", "The gateway's version.", registry=registry).info(
        {"version": version()}
    )
    own = None if shared else registry
    return Metrics(
        enabled=enabled,
        registry=registry,
        transferred=Counter(
            "engine_gateway_transferred_bytes",
            "Body bytes moved, counted per chunk as they move (upload: client to engine).",
            ["direction", "route"],
            registry=own,
        ),
        requests=Counter(
            "engine_gateway_requests",
            "Requests finished, by how they ended.",
            ["method", "route", "status_class", "outcome"],
            registry=own,
        ),
        duration=Histogram(
            "engine_gateway_request_duration_seconds",
            "From the request's arrival to its last byte sent (or its end).",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=own,
        ),
        first_byte=Histogram(
            "engine_gateway_time_to_first_byte_seconds",
            "From the request's arrival to the response's headers sent to the client.",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=own,
        ),
        size=Histogram(
            "engine_gateway_transfer_size_bytes",
            "Body size of binary uploads and downloads.",
            ["direction", "route"],
            buckets=SIZE_BUCKETS,
            registry=own,
        ),
        in_flight=Gauge(
            "engine_gateway_requests_in_flight",
            "Requests being handled.",
            registry=own,
            multiprocess_mode="livesum",
        ),
        streams=Gauge(
            "engine_gateway_streams_in_flight",
            "Binary uploads and downloads being streamed.",
            ["direction"],
            registry=own,
            multiprocess_mode="livesum",
        ),
        upstream_ready=Gauge(
            "engine_gateway_upstream_ready",
            "1 when the engine answered its last readiness check, else 0.",
            registry=own,
            multiprocess_mode="livemostrecent",
        ),
        scans=Counter(
            "engine_gateway_scans",
            "Files scanned by clamd, by the door they took and how the scan ended.",
            ["direction", "door", "outcome"],
            registry=own,
        ),
        scan_duration=Histogram(
            "engine_gateway_scan_duration_seconds",
            "From a file's first byte sent to clamd to its verdict (or its failure).",
            ["direction"],
            buckets=DURATION_BUCKETS,
            registry=own,
        ),
        scanned=Counter(
            "engine_gateway_scanned_bytes",
            "File bytes sent to clamd, counted per chunk.",
            ["direction"],
            registry=own,
        ),
        digest_mismatches=Counter(
            "engine_gateway_digest_mismatches",
            "Uploads refused because a claimed RFC 9530 digest did not match, by field.",
            ["field"],
            registry=own,
        ),
        json_files=Counter(
            "engine_gateway_json_files",
            "File and Bytes values carried base64 in JSON bodies, as the engine stores or "
            "sends them.",
            ["direction", "route", "type"],
            registry=own,
        ),
        json_file_bytes=Counter(
            "engine_gateway_json_file_bytes",
            "Decoded bytes of the File and Bytes values carried in JSON bodies.",
            ["direction", "route"],
            registry=own,
        ),
        store_bytes=Counter(
            "engine_gateway_store_bytes",
            "Bytes into the document store (upload) and out of it (download), per chunk.",
            ["direction"],
            registry=own,
        ),
        offloaded=Counter(
            "engine_gateway_offloaded",
            "File and Bytes values put into the document store, the engine keeping a "
            "reference, by the door they came through.",
            ["door"],
            registry=own,
        ),
        resolved=Counter(
            "engine_gateway_resolved",
            "Downloads whose engine answer was a reference (or claimed to be one), by how "
            "they ended.",
            ["outcome"],
            registry=own,
        ),
        store_operations=Counter(
            "engine_gateway_store_operations",
            "Requests to the document store, by operation and outcome.",
            ["operation", "outcome"],
            registry=own,
        ),
        store_duration=Histogram(
            "engine_gateway_store_operation_seconds",
            "How long each request to the document store took (an upload: its first byte "
            "to its last; a read: until its first bytes).",
            ["operation"],
            buckets=DURATION_BUCKETS,
            registry=own,
        ),
        document_calls=Counter(
            "engine_gateway_document_api_calls",
            "Calls of the documents API, by operation (uploads, batches, reads, links made "
            "and used, deletes) and result: ok, partial, or why it was refused.",
            ["operation", "result"],
            registry=own,
        ),
    )
