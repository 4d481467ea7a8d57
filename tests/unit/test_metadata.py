"""Which name a download gets, from the engine's header, the metadata, or the variable."""

from __future__ import annotations

import pytest

from gateway.disposition import EngineDisposition, Quality
from gateway.metadata import Metadata, Naming, choose_filename

EXACT = EngineDisposition(Quality.EXACT, "report.pdf")
LOSSY = EngineDisposition(Quality.LOSSY, "r?port.pdf")
MISSING = EngineDisposition(Quality.MISSING)
FILE = Metadata("file", "Отчёт.pdf", "doc")
BYTES = Metadata("bytes", None, "blob")
ATTACHMENT = Metadata(None, "scan.tiff")


@pytest.mark.parametrize(
    ("engine", "found", "variable_name", "name_bytes", "expected"),
    [
        (EXACT, None, "doc", True, Naming("report.pdf", "engine")),
        (MISSING, FILE, "doc", True, Naming("Отчёт.pdf", "metadata")),
        (LOSSY, FILE, "doc", True, Naming("Отчёт.pdf", "metadata")),
        (MISSING, ATTACHMENT, None, True, Naming("scan.tiff", "metadata")),
        # Bytes: named after the variable (from the path or, on id routes, the metadata).
        (MISSING, BYTES, "blob", True, Naming("blob", "variable")),
        (MISSING, BYTES, None, True, Naming("blob", "variable")),
        (MISSING, BYTES, "blob", False, Naming(None, "none")),
        # No metadata (denied, timed out): what the engine said, else the variable's name.
        (LOSSY, None, "doc", True, Naming("r?port.pdf", "engine_lossy")),
        (MISSING, None, "doc", True, Naming("doc", "variable")),
        (MISSING, None, "doc", False, Naming(None, "none")),
        (MISSING, None, None, True, Naming(None, "none")),
        (MISSING, Metadata("file", None, "doc"), None, True, Naming(None, "none")),
    ],
)
def test_choose_filename(
    engine: EngineDisposition,
    found: Metadata | None,
    variable_name: str | None,
    name_bytes: bool,
    expected: Naming,
) -> None:
    assert choose_filename(engine, found, variable_name, name_bytes=name_bytes) == expected
