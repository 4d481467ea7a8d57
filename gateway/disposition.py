"""A safe, correct `Content-Disposition` (RFC 6266, RFC 8187): pure, no I/O.

The engine writes the stored filename raw: quotes, backslashes, controls and non-ASCII go
into the header as they are (non-Latin-1 characters become `?` or break the header), and
a crafted name can carry a path or a reserved device name. Here a filename is first made
safe to save (`sanitize`), then written twice: an ASCII fallback in `filename` for old
clients, and the exact name in `filename*` (UTF-8, percent-encoded) when they differ.
The result is ASCII only and can never contain CR or LF.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, unquote

DEFAULT_FILENAME = "download"
MAX_FILENAME_UTF8_BYTES = 255
MAX_EXTENSION_CHARS = 16

# RFC 8187 §3.2.1 attr-char, beyond ALPHA and DIGIT (which `quote` never escapes).
ATTR_CHAR_PUNCTUATION = "!#$&+-.^_`|~"

FALLBACK_REPLACED = frozenset('"\\%<>:|?*')

# Windows device names, with or without an extension (`CON.txt` opens the console).
WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{n}" for n in range(10)}
    | {f"LPT{n}" for n in range(10)}
    | {"COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"}
)

# C0, DEL, C1, line/paragraph separators, the bidirectional controls that make
# `evil\u202egnp.exe` look like `evilexe.png`, and lone surrogates: the engine's raw
# non-UTF-8 header bytes arrive as surrogate escapes, which no filename can hold.
_UNSAFE_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)


def sanitize(filename: str) -> str:
    """A name that is safe to save: no controls, no path, no hidden or device names, at
    most 255 bytes of UTF-8 with the extension kept; never empty."""
    name = unicodedata.normalize("NFC", filename)
    name = _UNSAFE_CHARACTERS.sub("", name)
    name = re.split(r"[/\\]", name)[-1]  # the last path segment only
    name = name.strip().lstrip(".").rstrip(". ")
    stem = name.partition(".")[0]
    if stem.upper().rstrip(" ") in WINDOWS_RESERVED:
        name = "_" + name
    name = _truncate(name)
    return name or DEFAULT_FILENAME


def _truncate(name: str) -> str:
    if len(name.encode()) <= MAX_FILENAME_UTF8_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION_CHARS:
        stem, extension = name, ""
    suffix = ("." + extension) if extension else ""
    budget = MAX_FILENAME_UTF8_BYTES - len(suffix.encode())
    cut = stem.encode()[:budget].decode("utf-8", errors="ignore")
    return (cut.rstrip(". ") or DEFAULT_FILENAME) + suffix


def ascii_fallback(name: str) -> str:
    """`name` reduced to printable ASCII for the plain `filename` parameter: accents
    dropped (NFKD); anything else outside printable ASCII, `"`, `\\`, `%` (which some
    clients percent-decode) and the characters Windows refuses in names replaced by `_`."""
    decomposed = unicodedata.normalize("NFKD", name)
    reduced = "".join(
        char if " " <= char <= "~" and char not in FALLBACK_REPLACED else "_"
        for char in decomposed
        if not unicodedata.combining(char)
    )
    return sanitize(reduced)


def content_disposition(filename: str | None, disposition: str = "attachment") -> str:
    """The header value for `filename` (None: no filename parameter at all)."""
    if filename is None:
        return disposition
    name = sanitize(filename)
    fallback = ascii_fallback(name)
    header = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe=ATTR_CHAR_PUNCTUATION)}"
    return header


class Quality(enum.Enum):
    EXACT = "exact"  # the engine's header names the file exactly
    LOSSY = "lossy"  # a name is there but damaged (`?`, mojibake, raw non-ASCII bytes)
    MISSING = "missing"  # no header, or no filename in it


@dataclass(frozen=True)
class EngineDisposition:
    quality: Quality
    filename: str | None = None


_MOJIBAKE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf]")  # UTF-8 bytes read as Latin-1


def _parameters(value: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    pattern = r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)'
    for match in re.finditer(pattern, value):
        name, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        parameters.setdefault(name, raw)
    return parameters


def parse_engine_disposition(value: str | None) -> EngineDisposition:
    """Judge the engine's header: is the filename in it exact, damaged, or absent?

    Header bytes outside ASCII arrive as surrogate escapes (aiohttp decodes headers as
    UTF-8 with `surrogateescape`), which is how a raw Latin-1 filename shows up.
    """
    if not value:
        return EngineDisposition(Quality.MISSING)
    parameters = _parameters(value)
    extended = parameters.get("filename*")
    if extended is not None:
        charset, _, rest = extended.partition("'")
        _, _, encoded = rest.partition("'")
        try:
            name = unquote(encoded, encoding=charset or "utf-8", errors="strict")
        except (LookupError, ValueError):  # also a charset name with a NUL or a raw byte in it
            name = ""
        # Decoded strictly, so a U+FFFD left in the name is one the sender wrote: exact too.
        if name:
            return EngineDisposition(Quality.EXACT, name)
    plain = parameters.get("filename")
    if plain is None:
        return EngineDisposition(Quality.MISSING)
    damaged = (
        "?" in plain
        or not plain.isascii()
        or any("\udc80" <= char <= "\udcff" for char in plain)
        or _MOJIBAKE.search(plain) is not None
    )
    return EngineDisposition(Quality.LOSSY if damaged else Quality.EXACT, plain)


# Policy: how a download is presented.

ATTACHMENT = "attachment"
INLINE = "inline"
DISPOSITION_TYPES = (ATTACHMENT, INLINE)

# What a browser may show inline: media it renders without running script, given
# `nosniff`. Everything else (HTML, SVG, XHTML, any XML, JavaScript, unknown or missing
# types, which a browser might sniff into those) is an attachment, whatever was asked.
_INLINE_PREFIXES = ("image/", "audio/", "video/")
_INLINE_TYPES = frozenset({"text/plain", "text/csv", "application/pdf", "application/json"})


def renders_safely(content_type: str | None) -> bool:
    # A browser reads `image/png, text/html` as a list and takes the last type it can parse
    # (Fetch, "extract a MIME type"): HTML. One type only, then.
    if content_type is None or "," in content_type:
        return False
    media_type = content_type.partition(";")[0].strip().lower()
    if "xml" in media_type:  # image/svg+xml included
        return False
    return media_type in _INLINE_TYPES or media_type.startswith(_INLINE_PREFIXES)


def disposition_type(requested: str | None, default: str, content_type: str | None) -> str:
    wanted = requested or default
    return INLINE if wanted == INLINE and renders_safely(content_type) else ATTACHMENT


def download_headers(filename: str | None, disposition: str) -> dict[str, str]:
    """The headers every binary download gets: its name, no sniffing, and for inline
    content a sandbox, so even a mislabelled file cannot run script in our origin."""
    found = {
        "Content-Disposition": content_disposition(filename, disposition),
        "X-Content-Type-Options": "nosniff",
    }
    if disposition == INLINE:
        found["Content-Security-Policy"] = "sandbox"
    return found


def rebuild(value: str) -> str:
    """Any other `Content-Disposition` from the engine (diagrams, reports), made safe with
    its type kept: the engine writes those names raw too."""
    kind = value.partition(";")[0].strip().lower()
    engine = parse_engine_disposition(value)
    return content_disposition(engine.filename, INLINE if kind == INLINE else ATTACHMENT)
