"""The gateway's configuration: one frozen value, parsed and validated once at start."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from yarl import URL

from gateway import store
from gateway.clamd import Address, parse_address
from gateway.disposition import DISPOSITION_TYPES
from gateway.routes import ApiRoots

LOG_LEVELS = ("debug", "info", "warning", "error")
BYTES_FILENAMES = ("var", "none")
SWITCHES = ("on", "off")
EVENT_LOOPS = ("asyncio", "uvloop")
CLAMD_FAILURES = ("closed", "open")
OTHER_PATHS = ("pass", "refuse")
DOCUMENT_LINKS = ("gateway", "store")
MAX_LINK_SECONDS = 10 * 365 * 86400  # ten years
MAX_STORE_LINK_SECONDS = 7 * 86400  # S3's longest presigned URL


class ConfigError(ValueError):
    """A configuration value the gateway cannot run with."""


@dataclass(frozen=True)
class Config:
    upstream_url: URL
    host: str = "127.0.0.1"
    port: int = 8000
    admin_host: str = "127.0.0.1"
    admin_port: int = 8001
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 300.0
    drain_timeout_seconds: float = 30.0
    # nginx's client_header_timeout and client_body_timeout, and their 60 s defaults.
    client_header_timeout_seconds: float = 60.0
    client_body_timeout_seconds: float = 60.0
    upstream_connections: int = 100
    max_upload_bytes: int = 1 << 30  # 0: no limit
    default_disposition: str = "attachment"
    bytes_filename: str = "var"  # a Bytes variable's download is named after the variable
    metrics: str = "on"
    splice: str = "on"  # large response bodies socket to socket in the kernel (Linux)
    relay: str = "on"  # unwatched downloads on the gateway's own connection, as framed
    event_loop: str = "asyncio"  # uvloop measured slower for uploads (bench/levers.py)
    workers: int = 1
    # Off: a client gets 502 while the engine is down. On: the public port stops listening
    # then, so a balancer in front moves every request, POSTs too, to another gateway.
    refuse_while_engine_down: str = "off"
    # RFC 9530: verify the digests an upload claims, answer with the stored content's.
    digests: str = "on"
    clamd: str = ""  # tcp://host:port or unix:///path; empty: no malware scanning
    # closed: an upload clamd cannot judge is refused (503); open: it is stored unscanned.
    clamd_failure: str = "closed"
    clamd_timeout_seconds: float = 60.0
    clamd_scan_downloads: str = "off"
    # The engine's limit for one JSON string (Jackson's maxStringLength): a File or Bytes
    # value in JSON longer than this is refused early. 0: no limit.
    json_string_limit_chars: int = 20_000_000
    # The webapps' paths (webapp.application-path), comma-separated: below each, their
    # engine API (/api/engine/engine/{name}) gets the route table as /engine-rest does.
    webapp_path: str = "/operaton,/camunda"
    # pass: every path goes to the engine (the gateway is its front door); refuse: paths
    # outside every API root get 404, as a gateway for the REST API alone.
    other_paths: str = "pass"
    # Where offloaded files live: file:///abs/dir or s3://bucket[/prefix]; empty: no store,
    # the engine keeps every file itself.
    document_store: str = ""
    document_store_endpoint: str = ""  # an S3-compatible store's URL (SeaweedFS, MinIO, Ceph)
    document_key_file: str = ""  # the references' HMAC keys, one a line, the first signs
    offload_above_bytes: int = 1 << 20  # 0: every File and Bytes value goes to the store
    # The documents API (documentsapi.py), served with a store; outside every API root.
    documents_path: str = "/documents"
    document_link_max_seconds: int = 7 * 86400  # S3's longest presigned URL, too
    # gateway: links the gateway signs and serves; store: an S3 store's presigned URLs.
    document_links: str = "gateway"
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.upstream_url.scheme not in ("http", "https") or not self.upstream_url.host:
            raise ConfigError(f"upstream must be an http(s) URL, got {str(self.upstream_url)!r}")
        if self.upstream_url.path not in ("", "/") or self.upstream_url.query_string:
            # The gateway forwards /engine-rest/... unchanged, so the upstream is an origin.
            raise ConfigError(
                f"upstream must be an origin like http://127.0.0.1:8080 without a path, "
                f"got {str(self.upstream_url)!r}"
            )
        for name in ("port", "admin_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"{name} must be between 0 and 65535, got {value}")
        if self.port == self.admin_port and self.port != 0 and self.host == self.admin_host:
            raise ConfigError("port and admin port must differ")
        for name in (
            "connect_timeout_seconds",
            "read_timeout_seconds",
            "client_header_timeout_seconds",
            "client_body_timeout_seconds",
            "clamd_timeout_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.drain_timeout_seconds < 0:
            raise ConfigError(
                f"drain_timeout_seconds must not be negative, got {self.drain_timeout_seconds}"
            )
        if self.upstream_connections < 1:
            raise ConfigError(
                f"upstream_connections must be at least 1, got {self.upstream_connections}"
            )
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.workers > 1 and 0 in (self.port, self.admin_port):
            # Each worker binds the ports itself: port 0 would give each a port of its own.
            raise ConfigError("with more than one worker, port and admin port must not be 0")
        if self.json_string_limit_chars < 0:
            raise ConfigError(
                f"json_string_limit_chars must not be negative, got {self.json_string_limit_chars}"
            )
        if self.max_upload_bytes < 0:
            raise ConfigError(f"max_upload_bytes must not be negative, got {self.max_upload_bytes}")
        if self.default_disposition not in DISPOSITION_TYPES:
            raise ConfigError(f"default_disposition must be one of {', '.join(DISPOSITION_TYPES)}")
        if self.bytes_filename not in BYTES_FILENAMES:
            raise ConfigError(f"bytes_filename must be one of {', '.join(BYTES_FILENAMES)}")
        for name in (
            "metrics",
            "splice",
            "relay",
            "refuse_while_engine_down",
            "digests",
            "clamd_scan_downloads",
        ):
            if getattr(self, name) not in SWITCHES:
                raise ConfigError(f"{name} must be one of {', '.join(SWITCHES)}")
        if self.clamd:
            try:
                parse_address(self.clamd)
            except ValueError as error:
                raise ConfigError(str(error)) from None
        elif self.clamd_scan_downloads == "on":
            raise ConfigError("clamd_scan_downloads needs clamd")
        for webapp in self.webapp_roots:
            if not webapp.startswith("/") or webapp.endswith("/") or "//" in webapp:
                raise ConfigError(
                    f"webapp_path must be paths like /operaton, comma-separated, got {webapp!r}"
                )
        if self.other_paths not in OTHER_PATHS:
            raise ConfigError(f"other_paths must be one of {', '.join(OTHER_PATHS)}")
        if self.clamd_failure not in CLAMD_FAILURES:
            raise ConfigError(f"clamd_failure must be one of {', '.join(CLAMD_FAILURES)}")
        if self.event_loop not in EVENT_LOOPS:
            raise ConfigError(f"event_loop must be one of {', '.join(EVENT_LOOPS)}")
        if self.document_store:
            try:
                store.parse_location(self.document_store, self.document_store_endpoint or None)
            except store.StoreConfigError as error:
                raise ConfigError(str(error)) from None
            if not self.document_key_file:
                raise ConfigError("document_store needs document_key_file (the references' keys)")
        elif self.document_store_endpoint:
            raise ConfigError("document_store_endpoint needs document_store")
        if self.offload_above_bytes < 0:
            raise ConfigError(
                f"offload_above_bytes must not be negative, got {self.offload_above_bytes}"
            )
        path = self.documents_path
        if not path.startswith("/") or path.endswith("/") or "//" in path or "?" in path:
            raise ConfigError(f"documents_path must be a path like /documents, got {path!r}")
        if self.api_roots.split(path + "/x") is not None or any(
            path == webapp or path.startswith(webapp + "/") for webapp in self.webapp_roots
        ):
            raise ConfigError(f"documents_path {path!r} is the engine's: choose another")
        if self.document_links not in DOCUMENT_LINKS:
            raise ConfigError(f"document_links must be one of {', '.join(DOCUMENT_LINKS)}")
        if self.document_links == "store" and not self.document_store.startswith("s3://"):
            raise ConfigError("document_links store needs an S3 document store")
        longest = MAX_STORE_LINK_SECONDS if self.document_links == "store" else MAX_LINK_SECONDS
        if not 1 <= self.document_link_max_seconds <= longest:
            raise ConfigError(
                f"document_link_max_seconds must be between 1 and {longest}"
                f"{' (S3 presigns for at most 7 days)' if self.document_links == 'store' else ''}, "
                f"got {self.document_link_max_seconds}"
            )
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")

    @property
    def webapp_roots(self) -> tuple[str, ...]:
        return tuple(path.strip() for path in self.webapp_path.split(",") if path.strip())

    @functools.cached_property
    def api_roots(self) -> ApiRoots:
        return ApiRoots(self.webapp_roots)

    @property
    def upstream_origin(self) -> URL:
        return self.upstream_url.origin()

    @property
    def clamd_address(self) -> Address | None:
        return parse_address(self.clamd) if self.clamd else None

    @property
    def document_location(self) -> store.Location | None:
        if not self.document_store:
            return None
        return store.parse_location(self.document_store, self.document_store_endpoint or None)

    @property
    def logging_level(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level.upper()]
