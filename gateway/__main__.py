"""Command line: every flag has an ENGINE_GATEWAY_* environment variable of the same name."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yarl import URL

from gateway import documents, metrics, sweep, workers
from gateway.config import (
    BYTES_FILENAMES,
    CLAMD_FAILURES,
    DOCUMENT_LINKS,
    EVENT_LOOPS,
    LOG_LEVELS,
    OTHER_PATHS,
    SWITCHES,
    Config,
    ConfigError,
)
from gateway.disposition import DISPOSITION_TYPES

ENV_PREFIX = "ENGINE_GATEWAY_"


@dataclass(frozen=True)
class Option:
    field: str
    parse: Callable[[str], Any]
    help: str
    choices: Sequence[str] | None = None
    name: str | None = None  # when the flag reads better than the field's name

    @property
    def flag(self) -> str:
        return "--" + (self.name or self.field).replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + (self.name or self.field).upper()


OPTIONS = (
    Option(
        "upstream_url",
        URL,
        "the engine's origin, e.g. http://127.0.0.1:8080, without a path: /engine-rest/… and "
        "every other path are forwarded as they come",
        name="upstream",
    ),
    Option("host", str, "address the public port listens on (0.0.0.0 in a container)"),
    Option(
        "port",
        int,
        "the public port: the engine's REST API, its webapps and every other path, proxied",
    ),
    Option("admin_host", str, "address of the admin port (/livez, /readyz, /metrics)"),
    Option(
        "admin_port",
        int,
        "port of /metrics, /livez and /readyz; never reachable through the public port",
    ),
    Option("connect_timeout_seconds", float, "time allowed to open a connection to the engine"),
    Option(
        "read_timeout_seconds",
        float,
        "longest silence from the engine, before its headers or between body chunks; "
        "there is deliberately no total timeout, a large transfer may take minutes",
    ),
    Option(
        "drain_timeout_seconds",
        float,
        "on SIGTERM, how long in-flight requests may run before they are cut",
    ),
    Option(
        "client_header_timeout_seconds",
        float,
        "time a connection has for the complete headers of its next request, from being "
        "accepted or from its previous answer; then it is closed (slow headers, idle keep-alive)",
    ),
    Option(
        "client_body_timeout_seconds",
        float,
        "longest silence from a client while its request body streams; then 408 and the "
        "engine request is aborted",
    ),
    Option(
        "upstream_connections",
        int,
        "connections to the engine at once, in each of the two pools: aiohttp's (requests "
        "with a body) and the relay's (bodyless GET and HEAD); more requests wait for one",
    ),
    Option(
        "max_upload_bytes",
        int,
        "largest request body accepted (413 beyond it, counted while streaming); 0: no limit",
    ),
    Option(
        "default_disposition",
        str,
        "how downloads are presented unless the request asks (?disposition=inline|attachment); "
        "active content (HTML, SVG, XML, script, unknown types) is always an attachment",
        choices=DISPOSITION_TYPES,
    ),
    Option(
        "bytes_filename",
        str,
        "file name for a Bytes variable's download, which has none in the engine: "
        "var (the variable's name) or none (no file name)",
        choices=BYTES_FILENAMES,
    ),
    Option(
        "metrics",
        str,
        "count requests and bytes and serve them at /metrics on the admin port",
        choices=SWITCHES,
    ),
    Option(
        "splice",
        str,
        "on Linux, move response bodies of 1 MiB or more from the engine's socket to the "
        "client's inside the kernel (os.splice) instead of through Python",
        choices=SWITCHES,
    ),
    Option(
        "relay",
        str,
        "binary downloads that nothing scans or hashes go to the client as the engine "
        "framed them (its chunked framing unchanged), read on the gateway's own connection "
        "and checked by llhttp; off: through aiohttp's client, decoded and framed again",
        choices=SWITCHES,
    ),
    Option(
        "event_loop",
        str,
        "asyncio's own event loop, or uvloop (pip install 'engine-gateway[uvloop]'); "
        "measured here, uvloop made uploads slower and small calls barely faster",
        choices=EVENT_LOOPS,
    ),
    Option(
        "workers",
        int,
        "processes serving the ports together (SO_REUSEPORT), each on one core at most; "
        "metrics are added up across them",
    ),
    Option(
        "refuse_while_engine_down",
        str,
        "stop listening on the public port while the engine cannot be connected to, and "
        "listen again once it answers: a balancer before several gateways (nginx, "
        "proxy_next_upstream error) then retries every request elsewhere, non-idempotent "
        "ones too, since none of it was sent; off, clients get 502",
        choices=SWITCHES,
    ),
    Option(
        "digests",
        str,
        "RFC 9530 integrity digests: an upload's Repr-Digest or Content-Digest (sha-256, "
        "sha-512) is checked while it streams, a mismatch is refused with 400 before the "
        "engine stores anything, and a stored variable's answer carries its Repr-Digest",
        choices=SWITCHES,
    ),
    Option(
        "clamd",
        str,
        "scan uploaded files with ClamAV's daemon while they stream, at tcp://host:port or "
        "unix:///path: multipart and raw uploads, and File and Bytes values in JSON bodies; "
        "an infected upload is refused with 422 before the engine stores it; empty: no "
        "scanning",
    ),
    Option(
        "clamd_failure",
        str,
        "when clamd cannot judge a file (unreachable, too slow, over its StreamMaxLength): "
        "closed refuses the upload with 503, open stores it unscanned (counted)",
        choices=CLAMD_FAILURES,
    ),
    Option(
        "clamd_timeout_seconds",
        float,
        "longest wait for clamd: to connect, to take the next chunk, and for its verdict "
        "after the file's last byte (clamd scans then: about 13 s per GiB measured here)",
    ),
    Option(
        "clamd_scan_downloads",
        str,
        "also scan downloads as they stream, and the Bytes values in the engine's JSON "
        "answers; the last chunk waits for clamd's verdict and an infected download's "
        "connection is cut (the client has all but that chunk); large downloads then pass "
        "through Python instead of os.splice",
        choices=SWITCHES,
    ),
    Option(
        "json_string_limit_chars",
        int,
        "the engine's limit for one JSON string (Jackson's maxStringLength): a File or Bytes "
        "value in a JSON body longer than this (in base64 characters) is refused with 400 "
        "before the engine has the whole body, pointing to the multipart …/data endpoint; "
        "set it to what the engine allows; 0: no limit",
    ),
    Option(
        "webapp_path",
        str,
        "the webapps' paths (the engine's webapp.application-path), comma-separated: below "
        "each, Cockpit's, Tasklist's and Admin's engine API (/api/engine/engine/{name}/…) "
        "gets the same treatment as /engine-rest; empty: none",
    ),
    Option(
        "other_paths",
        str,
        "pass: every other path goes to the engine unchanged (the webapps' pages, their "
        "admin and plugin APIs); refuse: 404 for paths outside every API root",
        choices=OTHER_PATHS,
    ),
    Option(
        "document_store",
        str,
        "where files beyond the engine live: file:///abs/dir, or s3://bucket[/prefix] with "
        "credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION; the engine "
        "then keeps a signed reference for each File and Bytes value over "
        "--offload-above-bytes; empty: the engine keeps every file itself",
    ),
    Option(
        "document_store_endpoint",
        str,
        "the URL of an S3-compatible store (SeaweedFS, MinIO, Ceph RGW); empty: AWS S3",
    ),
    Option(
        "document_key_file",
        str,
        "the keys that sign references (HMAC-SHA256), one per line: the first signs, every "
        "one verifies, so keys can be rotated; every gateway sharing a store shares it",
    ),
    Option(
        "offload_above_bytes",
        int,
        "with --document-store, File and Bytes values larger than this go to the store; "
        "0: every one",
    ),
    Option(
        "documents_path",
        str,
        "with --document-store, where the documents API is served (upload once, attach to any "
        "variable, expiring links): a path the engine does not serve",
    ),
    Option(
        "document_link_max_seconds",
        int,
        "the longest a link to a document (POST <documents-path>/{id}/links) may live; a "
        "longer timeToLive is cut to it",
    ),
    Option(
        "document_links",
        str,
        "gateway: links the gateway signs and serves, on any store, Range included; store: "
        "an S3 store's own presigned URLs, so a download bypasses the gateway (and its "
        "metrics, names and scanning)",
        choices=DOCUMENT_LINKS,
    ),
    Option(
        "log_level",
        str,
        "what goes to stderr: at info, one access line per request and the gateway's own "
        "notices; warning and error, only faults",
        choices=LOG_LEVELS,
    ),
)


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    defaults = Config(upstream_url=URL("http://127.0.0.1:8080"))
    parser = argparse.ArgumentParser(
        prog="engine-gateway",
        description="Streaming gateway for Camunda 7-compatible process engines. "
        "Each flag can also be set by the environment variable shown. "
        "`engine-gateway documents sweep --help`: the document store's sweep.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {metrics.version()}")
    for option in OPTIONS:
        default = getattr(defaults, option.field)
        if option.env in environ:
            try:
                default = option.parse(environ[option.env])
            except ValueError:
                parser.error(f"{option.env}={environ[option.env]!r} is not a valid value")
        parser.add_argument(
            option.flag,
            dest=option.field,
            type=option.parse,
            default=default,
            choices=option.choices,
            help=f"{option.help} (env {option.env}, default {default})",
        )
    arguments = parser.parse_args(argv)
    try:
        config = Config(**vars(arguments))
        if config.document_store:
            documents.read_keys(config.document_key_file)
    except (ConfigError, documents.KeysError) as error:
        parser.error(str(error))
    return config


def main(argv: Sequence[str] | None = None) -> None:
    given = sys.argv[1:] if argv is None else argv
    if list(given[:2]) == ["documents", "sweep"]:
        sweep.main(given[2:], os.environ)
    config = parse_config(given, os.environ)
    sys.exit(workers.run(config))


if __name__ == "__main__":
    main()
