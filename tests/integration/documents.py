"""What the document store holds, seen from outside the gateway: the disk as `ls` sees it,
or an S3 bucket as its own API lists it. Tests ask these, not the gateway's store code,
whether anything was left behind."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import obstore
from obstore.store import S3Store

from tests import processes


def key_file(directory: Path, *keys: str) -> Path:
    """A document key file: the first key signs, every one verifies."""
    path = directory / "document-keys"
    path.write_text("".join(f"{key}\n" for key in keys))
    return path


def new_key() -> str:
    return secrets.token_hex(32)


@contextlib.contextmanager
def store_gateway(
    work: Path, engine_url: str, *args: str, backend: Backend | None = None, key: str = ""
) -> Iterator[processes.Gateway]:
    """A gateway with a document store: `backend`'s, or a file store in `work`; its key file
    in `work` (`key`, or a new one); `args` besides."""
    store = backend.gateway_args if backend is not None else (
        "--document-store", f"file://{work / 'store'}",
    )  # fmt: skip
    keys = ("--document-key-file", str(key_file(work, key or new_key())))
    env = backend.s3.credentials if backend is not None and backend.s3 is not None else {}
    with processes.gateway(work, engine_url, *store, *keys, *args, env=env) as started:
        yield started


@dataclass(frozen=True)
class Backend:
    """A store as the gateway is told of it, and how a test looks into it."""

    name: str
    gateway_args: tuple[str, ...]
    root: Path | None = None  # the file store's directory
    s3: processes.SeaweedFS | None = None
    bucket: str = ""
    prefix: str = ""  # where the gateway's keys start (an S3 store's prefix)

    @property
    def store_id(self) -> str:
        """The store's id in a reference: --document-store as the gateway was given it."""
        return self.gateway_args[self.gateway_args.index("--document-store") + 1].rstrip("/")

    def _bucket(self) -> S3Store:
        assert self.s3 is not None
        return self.s3.bucket_store(self.bucket)

    def objects(self, prefix: str = "") -> set[str]:
        """Every object, temporary files of the disk included."""
        if self.root is not None:
            found = set()
            for directory, _, files in os.walk(self.root):
                for name in files:
                    found.add(str(Path(directory, name).relative_to(self.root)))
            return {key for key in found if key.startswith(prefix)}
        return {meta["path"] for batch in self._bucket().list(prefix) for meta in batch}

    def read(self, key: str) -> bytes:
        if self.root is not None:
            return (self.root / key).read_bytes()
        return bytes(self._bucket().get(key).bytes())

    def modified(self, key: str) -> datetime:
        """When the object was last written, as the store says."""
        if self.root is not None:
            return datetime.fromtimestamp((self.root / key).stat().st_mtime, UTC)
        modified: datetime = obstore.head(self._bucket(), key)["last_modified"]
        return modified

    def delete(self, key: str) -> None:
        if self.root is not None:
            (self.root / key).unlink()
            return
        obstore.delete(self._bucket(), key)

    def open_uploads(self) -> list[str]:
        """Multipart uploads begun and neither completed nor aborted (none on a disk)."""
        if self.s3 is None:
            return []
        return self.s3.open_multipart_uploads(self.bucket)
