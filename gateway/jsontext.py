"""The bytes of a JSON body as text, the way Jackson reads them: pure, no I/O.

- The encoding: Jackson's ByteSourceJsonBootstrapper detects UTF-8 (with or without a BOM),
  UTF-16 and UTF-32 (with or without a BOM) from the first four bytes and ignores any
  charset the request names (measured: the engines store UTF-16 and UTF-32 bodies).
  `BodyText` does the same and hands the scanner UTF-8, transcoding the others with
  Python's incremental codecs.
- UTF-8 inside strings: Jackson's UTF8StreamJsonParser takes a lead byte's length and the
  continuation bytes' bits without the overlong check (measured: `C0 AF` is stored as '/').
  Python's codecs refuse overlong forms, so `Utf8` decodes as Jackson does, or a key or a
  value could hide from the scanner behind them.
"""

from __future__ import annotations

import codecs


class BodyText:
    """A body's bytes, as UTF-8 for the scanner, whatever encoding Jackson finds in them."""

    def __init__(self) -> None:
        self._head = b""  # the first bytes, until the encoding is known
        self._known = False
        self._transcoder: codecs.IncrementalDecoder | None = None

    def feed(self, data: bytes) -> bytes:
        if self._known:
            return data if self._transcoder is None else self._transcoded(data)
        self._head += data
        if len(self._head) < 4:
            return b""
        return self._decide()

    def finish(self) -> bytes:
        text = b"" if self._known else self._decide()
        if self._transcoder is not None:
            text += self._transcoded(b"", final=True)
        return text

    def _decide(self) -> bytes:
        self._known = True
        head, self._head = self._head, b""
        if len(head) < 4:
            return head  # too short to hold a typed value in any encoding
        encoding, skip = detect_encoding(head)
        if encoding is None:
            return head[skip:]
        self._transcoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        return self._transcoded(head[skip:])

    def _transcoded(self, data: bytes, *, final: bool = False) -> bytes:
        assert self._transcoder is not None
        return self._transcoder.decode(data, final=final).encode("utf-8", "surrogatepass")


def detect_encoding(head: bytes) -> tuple[str | None, int]:
    """(Python codec or None for UTF-8, bytes of BOM to skip), as Jackson detects it from
    the first four bytes."""
    quad = int.from_bytes(head[:4], "big")
    if quad == 0x0000FEFF:
        return "utf-32-be", 4
    if quad == 0xFFFE0000:
        return "utf-32-le", 4
    if quad >> 16 == 0xFEFF:
        return "utf-16-be", 2
    if quad >> 16 == 0xFFFE:
        return "utf-16-le", 2
    if quad >> 8 == 0xEFBBBF:
        return None, 3
    if quad >> 8 == 0:
        return "utf-32-be", 0
    if quad & 0x00FFFFFF == 0:
        return "utf-32-le", 0
    if (quad >> 16) & 0xFF00 == 0:
        return "utf-16-be", 0
    if (quad >> 16) & 0x00FF == 0:
        return "utf-16-le", 0
    return None, 0


class Utf8:
    """UTF-8 as Jackson's UTF8StreamJsonParser reads it inside strings: a lead byte says
    how many continuation bytes follow, and the code point is taken from their bits with
    no check for overlong forms; anything else is U+FFFD (Jackson refuses the body)."""

    def __init__(self) -> None:
        self.pending = bytearray()  # a sequence cut by the end of a piece

    def decode(self, data: bytes) -> list[int]:
        raw = self.pending + data
        self.pending = bytearray()
        chars: list[int] = []
        position = 0
        while position < len(raw):
            lead = raw[position]
            length = 1 if lead < 0x80 else _UTF8_LENGTHS.get(lead >> 3, 0)
            if length == 0:
                chars.append(0xFFFD)
                position += 1
                continue
            if position + length > len(raw):
                self.pending = bytearray(raw[position:])
                break
            tail = raw[position + 1 : position + length]
            if any(b & 0xC0 != 0x80 for b in tail):
                chars.append(0xFFFD)
                position += 1
                continue
            char = lead & (0x7F >> length if length > 1 else 0x7F)
            for b in tail:
                char = (char << 6) | (b & 0x3F)
            chars.append(char if char <= 0x10FFFF else 0xFFFD)  # F5 to F7 lead past Unicode
            position += length
        return chars


# By the top five bits of a lead byte: how long its sequence is.
_UTF8_LENGTHS = {**dict.fromkeys(range(0x18, 0x1C), 2), 0x1C: 3, 0x1D: 3, 0x1E: 4}


def jackson_text(raw: bytes) -> str:
    """A short string's text, read as Jackson reads UTF-8 (see Utf8)."""
    decoder = Utf8()
    chars = decoder.decode(raw)
    chars += [0xFFFD] * len(decoder.pending)
    # Escaped surrogate pairs (\ud83d\ude00) are one character, as in Java's UTF-16.
    text = "".join(map(chr, chars))
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
