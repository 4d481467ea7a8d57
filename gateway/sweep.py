"""The sweep: `engine-gateway documents sweep`. Content no variable references is deleted
from the document store; content a variable references never is.

1. **Mark.** Every reference held by a runtime variable, a historic variable instance or a
   historic detail, read through the engine's REST API with an account that may read every
   variable (`--engine-credentials-file`), paged: the queries list each binary variable
   (File, Bytes) without its value; for each, a `HEAD` of its `…/data` says how long it is
   (the engine declares the length of a small value), and only a value small enough to be
   a reference is fetched and verified with the document keys. A large value the engine
   still keeps is never downloaded. Pages overlap, so that rows the engine deletes while
   the sweep reads cannot shift a row past it.
2. **Sweep.** A document's record no mark names, and content neither a mark nor a kept
   record names, is deleted once it is older than `--grace-seconds` (default one day); so
   is an upload's staging object (a gateway that died mid-upload). An upload in flight, or
   one whose engine write has not landed yet, is younger than that: never swept.
   A document the documents API made (`kept/<id>`) stays until it is deleted or its
   `expiresAt` passes, attached or not; once expired, it goes at once, and a variable's
   reference to it no longer keeps its content.

It deletes only what is unmarked and old, and a delete of what is already gone is no
failure: running it again, or on several machines at once, is safe. `--dry-run` lists what
would go and deletes nothing. What it did is printed as JSON, and with `--metrics-file`
written for Prometheus' textfile collector (node_exporter), as a batch job's metrics are.

A reference copied into a new variable while the sweep reads the engine is marked through
the variable it was copied from, or through its history (level `full` records every
update): run the sweep with history on, as the engine's own default level does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import aiohttp
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from yarl import URL

from gateway import documents, reference, store

PAGE_SIZE = 500
PAGE_OVERLAP = 100  # rows deleted during one page's read that cannot make a row skipped
BINARY_TYPES = frozenset({"File", "Bytes"})
# The engine's queries of binary variables, and where each row's value is downloaded.
QUERIES = (
    ("variable-instance", "type", "variable-instance/{id}/data"),
    ("history/variable-instance", "type", "history/variable-instance/{id}/data"),
    ("history/detail", "variableType", "history/detail/{id}/data"),
)
DEFAULT_GRACE_SECONDS = 86400


class SweepError(Exception):
    """The sweep cannot go on (the engine refused, the store failed); the message says why."""


@dataclass
class Report:
    variables: int = 0  # binary variables, historic instances and details read
    marked_documents: set[str] = field(default_factory=set)
    marked_content: set[str] = field(default_factory=set)
    deleted: dict[str, list[str]] = field(
        default_factory=lambda: {"documents": [], "content": [], "staging": []}
    )
    kept_young: int = 0

    def summary(self, dry_run: bool) -> dict[str, object]:
        return {
            "dry_run": dry_run,
            "binary_variables_read": self.variables,
            "marked_documents": len(self.marked_documents),
            "marked_content": len(self.marked_content),
            "kept_within_grace": self.kept_young,
            ("would_delete" if dry_run else "deleted"): self.deleted,
        }


async def _rows(
    client: aiohttp.ClientSession, api: URL, query: str
) -> AsyncIterator[dict[str, object]]:
    first = 0
    while True:
        url = (api / query).with_query(
            deserializeValues="false", firstResult=str(first), maxResults=str(PAGE_SIZE)
        )
        async with client.get(url) as response:
            if response.status != 200:
                raise SweepError(f"GET {query}: {response.status} {await response.text()}")
            page = await response.json()
        for row in page:
            yield row
        if len(page) < PAGE_SIZE:
            return
        first += PAGE_SIZE - PAGE_OVERLAP


async def _small_value(client: aiohttp.ClientSession, url: URL) -> bytes | None:
    """The value at `url` if the engine declares it small enough to be a reference."""
    async with client.head(url) as response:
        if response.status != 200:
            return None  # gone since it was listed
        length = response.content_length
    if length is None or length > reference.MAX_BYTES:
        return None
    async with client.get(url) as response:
        return await response.read() if response.status == 200 else None


async def mark(
    client: aiohttp.ClientSession, api: URL, keys: Sequence[bytes], report: Report
) -> None:
    now = datetime.now(UTC)
    for query, type_field, data_path in QUERIES:
        async for row in _rows(client, api, query):
            if row.get(type_field) not in BINARY_TYPES:
                continue
            report.variables += 1
            data = await _small_value(client, api / data_path.format(id=row["id"]))
            found = reference.decode(data, keys) if data is not None else None
            # An expired document is not kept for the variables still naming it.
            if isinstance(found, reference.Reference) and not documents.expired(found, now):
                report.marked_documents.add(found.document_id)
                report.marked_content.add(found.content_hash)


async def sweep(
    objects: store.Store, report: Report, *, grace_seconds: float, dry_run: bool
) -> None:
    now = datetime.now(UTC)

    def old(stored: store.Stored) -> bool:
        young = (now - stored.last_modified).total_seconds() < grace_seconds
        report.kept_young += young
        return not young

    named_by_records: set[str] = set()
    kept = await _kept(objects, report, now, old, dry_run)
    for stored in await objects.listed(store.DOCUMENTS):
        document_id = stored.key.rsplit("/", 1)[1]
        if document_id in kept:
            named_by_records.add(kept[document_id])
            continue
        if document_id in report.marked_documents:
            continue  # its content is marked with it
        if not old(stored):
            # A document whose engine write may not have landed yet: its content stays too.
            record = await objects.record(document_id)
            if record:
                named_by_records.add(_content_hash_of(record))
            continue
        await _delete(objects, stored.key, "documents", report, dry_run)
    for prefix, kind in ((store.CONTENT, "content"), (store.STAGING, "staging")):
        for stored in await objects.listed(prefix):
            name = stored.key.rsplit("/", 1)[1]
            if kind == "content" and (name in report.marked_content or name in named_by_records):
                continue
            if old(stored) and (kind != "content" or await _still_old(objects, stored)):
                await _delete(objects, stored.key, kind, report, dry_run)
    for leftover in objects.leftovers(older_than_seconds=grace_seconds):
        report.deleted["staging"].append(str(leftover))
        if not dry_run:
            leftover.unlink(missing_ok=True)


async def _still_old(objects: store.Store, stored: store.Stored) -> bool:
    """Content is asked again just before it goes: an upload of the same bytes since the
    listing made it new (store.commit), for a document the listing did not see: it stays
    unless it is as the listing found it."""
    modified = await objects.modified(stored.key)
    return modified is not None and modified <= stored.last_modified


async def _kept(
    objects: store.Store,
    report: Report,
    now: datetime,
    old: Callable[[store.Stored], bool],
    dry_run: bool,
) -> dict[str, str]:
    """The documents API's documents that stay (by id: their content's hash): every one
    until it is deleted or expires, attached to a variable or not. An expired one goes at
    once, marked or not; a mark left by a document deleted (or a create cut short) goes
    once it is old."""
    kept: dict[str, str] = {}
    for stored in await objects.listed(store.KEPT):
        document_id = stored.key.rsplit("/", 1)[1]
        record = await objects.record(document_id)
        if record is None:
            if old(stored):
                await _delete(objects, stored.key, "documents", report, dry_run)
            continue
        if _expired(record, now):
            report.marked_documents.discard(document_id)
            for key in (store.DOCUMENTS + document_id, stored.key):
                await _delete(objects, key, "documents", report, dry_run)
            continue
        kept[document_id] = _content_hash_of(record)
    return kept


def _expired(record: bytes, now: datetime) -> bool:
    try:
        expires_at = json.loads(record)["metadata"]["expiresAt"]
        return expires_at is not None and datetime.fromisoformat(expires_at) <= now
    except (ValueError, KeyError, TypeError):
        return False


def _content_hash_of(record: bytes) -> str:
    """The content a record names. Not verified: a record only ever keeps content (one
    signed with a key since retired must not lose it)."""
    try:
        value = json.loads(record)["contentHash"]
    except (ValueError, KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


async def _delete(objects: store.Store, key: str, kind: str, report: Report, dry_run: bool) -> None:
    report.deleted[kind].append(key)
    if not dry_run:
        await objects.delete(key)


# --- the command ---------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    described = argparse.ArgumentParser(
        prog="engine-gateway documents sweep",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    described.add_argument("--upstream", required=True, help="the engine's origin")
    described.add_argument("--document-store", required=True)
    described.add_argument("--document-store-endpoint", default="")
    described.add_argument("--document-key-file", required=True)
    described.add_argument(
        "--engine-credentials-file",
        required=True,
        help="a file holding user:password of an account that may read every variable",
    )
    described.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS)
    described.add_argument("--dry-run", action="store_true", help="list what would go")
    described.add_argument("--metrics-file", help="write the run's metrics here (textfile)")
    return described


def _from_environment(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The gateway's ENGINE_GATEWAY_* variables for the flags the sweep shares with it."""
    given = list(argv)
    for flag in ("--upstream", "--document-store", "--document-store-endpoint",
                 "--document-key-file"):  # fmt: skip
        variable = "ENGINE_GATEWAY_" + flag[2:].replace("-", "_").upper()
        if flag not in given and variable in environ:
            given += [flag, environ[variable]]
    return given


@dataclass(frozen=True)
class Settings:
    upstream: URL
    location: store.Location
    keys: tuple[bytes, ...]
    authorization: str  # the engine account's Basic credentials
    grace_seconds: float
    dry_run: bool


def settings(arguments: argparse.Namespace) -> Settings:
    try:
        location = store.parse_location(
            arguments.document_store, arguments.document_store_endpoint or None
        )
        keys = documents.read_keys(arguments.document_key_file)
        credentials = Path(arguments.engine_credentials_file).read_text().strip()
    except (store.StoreConfigError, documents.KeysError, OSError) as error:
        raise SweepError(str(error)) from None
    if ":" not in credentials:
        raise SweepError("the engine credentials file holds user:password")
    return Settings(
        URL(arguments.upstream.rstrip("/")),
        location,
        keys,
        "Basic " + base64.b64encode(credentials.encode()).decode(),
        arguments.grace_seconds,
        arguments.dry_run,
    )


async def run(given: Settings) -> Report:
    objects = store.Store(given.location, read_timeout_seconds=300)
    report = Report()
    timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=300)
    async with aiohttp.ClientSession(
        headers={"Authorization": given.authorization}, timeout=timeout
    ) as client:
        await mark(client, given.upstream / "engine-rest", given.keys, report)
    await sweep(objects, report, grace_seconds=given.grace_seconds, dry_run=given.dry_run)
    return report


def _write_metrics(path: str, report: Report, dry_run: bool) -> None:
    registry = CollectorRegistry()
    Gauge(
        "engine_gateway_sweep_marked_documents",
        "Documents a variable references, at the last sweep.",
        registry=registry,
    ).set(len(report.marked_documents))
    deleted = Gauge(
        "engine_gateway_sweep_deleted_objects",
        "Objects the last sweep deleted (or would have, with --dry-run), by kind.",
        ["kind", "dry_run"],
        registry=registry,
    )
    for kind, keys in report.deleted.items():
        deleted.labels(kind, str(dry_run).lower()).set(len(keys))
    Gauge(
        "engine_gateway_sweep_last_success_timestamp_seconds",
        "When the last sweep ended without an error.",
        registry=registry,
    ).set(time.time())
    write_to_textfile(path, registry)


def main(argv: Sequence[str], environ: Mapping[str, str]) -> NoReturn:
    arguments = parser().parse_args(_from_environment(argv, environ))
    try:
        report = asyncio.run(run(settings(arguments)))
    except (SweepError, store.StoreError, aiohttp.ClientError) as error:
        print(f"engine-gateway documents sweep: {error}", file=sys.stderr)
        _exit(1)
    print(json.dumps(report.summary(arguments.dry_run), indent=1))
    if arguments.metrics_file:
        _write_metrics(arguments.metrics_file, report, arguments.dry_run)
    _exit(0)


def _exit(status: int) -> NoReturn:
    """Ends the process without the interpreter's finalisation: with an S3 store, a sweep
    that ended well was killed by SIGABRT during it about one run in three here (obstore's
    Rust runtime, pyo3-async-runtimes#90), which a CronJob would take for a failure.
    Nothing is left to do by then but flushing the output."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
