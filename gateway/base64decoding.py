"""The engine's base64 decoders, mirrored: pure, no I/O, fed a value character by character
(or in runs of the alphabet) as it streams.

Which one the engine runs depends on the type and the engine (VariableValueDto.toTypedValue,
tried against both engines, docs/files-in-json.md):
- Bytes values, in Operaton and in Camunda 7: Jackson parses `"` + value + `"` again into a
  byte[] with its default variant, MIME without line feeds (jackson-core 2.21
  ReaderBasedJsonParser._decodeBase64 and ParserBase._decodeBase64Escape, translated):
  `JacksonDecoding`, with its errors;
- File values in Operaton: `java.util.Base64.getDecoder()` (Java 17 Decoder.decode0), the
  RFC 4648 alphabet only, padding optional but right where given, nothing after it;
  `JavaDecoding` only judges: where it accepts, the bytes are those of the next one;
- File values in Camunda 7.24: its copy of commons-codec's `Base64.decodeBase64(String)`,
  which refuses nothing: `CodecDecoding`.

`ValueDecoding` runs all three over one value and hands on one stream of bytes for clamd:
the decoding of the value's type, if its object has named it before the value; else, while
Jackson's and commons-codec's bytes agree (always, for base64 as clients write it), both;
where they part (escapes, a quote, data after padding, characters outside the alphabet)
commons-codec's. It says whether what it handed on is what the engine stores for the type
that turns out: if not, the value's scan cannot stand for it (jsonfiles.py).

Whole units of the alphabet, the bulk of any value, are decoded by pybase64 (libbase64's
SIMD code): measured here at 8 GB/s where binascii.a2b_base64 managed 0.3, and binascii was
then most of what a file in JSON cost the gateway. No library can be asked to skip white
space only between units or to read JSON escapes, as Jackson does, or to follow
commons-codec's leniency, so the rest, a few characters at a time, is here.
"""

from __future__ import annotations

from typing import Protocol

import pybase64

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"  # RFC 4648 §4
_BITS = {char: bits for bits, char in enumerate(ALPHABET)}
_PADDING = -2


def _decode(units: bytes) -> bytes:
    """Whole 4-character units of the standard alphabet, which decode the same every way."""
    decoded: bytes = pybase64.b64decode(units, validate=True)
    return decoded


class _Decoder(Protocol):
    @property
    def busy(self) -> bool: ...

    @property
    def aligned(self) -> bool: ...

    def char(self, char: int) -> bytes: ...


def _bulk(decoder: _Decoder, run: bytes) -> bytes:
    """Alphabet characters: a unit begun before, one by one, then whole units in bulk, then
    the few characters of the next unit."""
    out = bytearray()
    start = 0
    while start < len(run) and not decoder.aligned and decoder.busy:
        out += decoder.char(run[start])
        start += 1
    if not decoder.busy:
        return bytes(out)
    whole = (len(run) - start) // 4 * 4
    if whole:
        out += _decode(run[start : start + whole])
    for char in run[start + whole :]:
        out += decoder.char(char)
    return bytes(out)


def _bits(char: int) -> int:
    """Jackson's Base64Variant.decodeBase64Char: 0 to 63, -2 for padding, -1 otherwise."""
    if char == 0x3D:
        return _PADDING
    return _BITS.get(char, -1)


class JavaDecoding:
    """Whether java.util.Base64's basic decoder takes the value (decode0): only the
    alphabet, then optional padding that is right for its unit, then nothing."""

    def __init__(self) -> None:
        self.error: str | None = None
        self._position = 0  # characters into the current 4-character unit
        self._padding = 0  # 1: one `=` seen where two are needed; 2: the end was padded

    def run(self, length: int) -> None:
        """`length` alphabet characters."""
        if self.error is None:
            if self._padding:
                self.error = "characters after its padding"
            self._position = (self._position + length) % 4

    def char(self, char: int) -> None:
        if self.error is not None:
            return
        if self._padding == 1:
            self._padding = 2
            if char != 0x3D:
                self.error = "a wrong 4-character ending unit"
            return
        if self._padding == 2:
            self.error = "characters after its padding"
        elif char == 0x3D:
            if self._position in (0, 1):
                self.error = "a wrong 4-character ending unit"
            self._padding = 1 if self._position == 2 else 2
        elif char in _BITS:
            self._position = (self._position + 1) % 4
        else:
            self.error = f"the character {shown(char)}, which is not base64"

    def end(self) -> None:
        if self.error is None and (self._padding == 1 or self._position == 1):
            self.error = "a last unit without enough bits"


class JacksonDecoding:
    """Jackson's ReaderBasedJsonParser._decodeBase64 and ParserBase._decodeBase64Escape
    (2.21) with the MIME-without-line-feeds variant, over the text `value` + `"`: the
    decoded bytes, and the error where Jackson would raise one. A value it ends early (an
    unescaped `"`) is decoded only up to there: Jackson ignores the rest (trailing tokens
    are allowed by default)."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.ended = False
        self._index = 0  # position in the 4-character unit; 4: the second `=` is due
        self._data = 0
        self._escape = bytearray()  # a backslash escape being read

    @property
    def busy(self) -> bool:
        return self.error is None and not self.ended

    @property
    def aligned(self) -> bool:
        """At the start of a unit, nothing pending: whole units may be decoded in bulk."""
        return self.busy and self._index == 0 and not self._escape

    def bulk(self, run: bytes) -> bytes:
        return _bulk(self, run)

    def char(self, char: int) -> bytes:
        if not self.busy:
            return b""
        if self._escape:
            self._escape.append(char)
            escaped = unescaped(self._escape)
            if escaped is None:
                return b""
            self._escape.clear()
            if escaped < 0:
                return self._fail("an invalid escape")
            return self._unit(escaped, escaped=True)
        if char == 0x5C:
            # _decodeBase64Escape: at any position of a unit a backslash starts an escape.
            self._escape.append(char)
            return b""
        return self._unit(char, escaped=False)

    def _unit(self, char: int, *, escaped: bool) -> bytes:
        bits = _bits(char)
        index = self._index
        if index == 0:
            if char <= 0x20:
                return b""  # white space between units is skipped
            if char == 0x22 and not escaped:
                self.ended = True
                return b""
            if bits < 0:
                return self._fail(f"the character {shown(char)} at the start of a unit")
            self._data, self._index = bits, 1
            return b""
        if index == 1:
            if bits < 0:
                return self._fail(f"the character {shown(char)} as the second of a unit")
            self._data, self._index = (self._data << 6) | bits, 2
            return b""
        if index == 2:
            if bits == _PADDING:
                self._index = 4
                return b""
            if char == 0x22 and not escaped:
                self.ended = True
                return self._fail("no padding", emitted=bytes([(self._data >> 4) & 0xFF]))
            if bits < 0:
                return self._fail(f"the character {shown(char)} as the third of a unit")
            self._data, self._index = (self._data << 6) | bits, 3
            return b""
        if index == 4:
            if bits != _PADDING:
                return self._fail("a single '=' where its unit needs two")
            self._index = 0
            return bytes([(self._data >> 4) & 0xFF])
        # index 3
        if bits == _PADDING:
            self._index = 0
            data = self._data >> 2
            return bytes([(data >> 8) & 0xFF, data & 0xFF])
        if char == 0x22 and not escaped:
            self.ended = True
            data = self._data >> 2
            return self._fail("no padding", emitted=bytes([(data >> 8) & 0xFF, data & 0xFF]))
        if bits < 0:
            return self._fail(f"the character {shown(char)} as the fourth of a unit")
        data = (self._data << 6) | bits
        self._index = 0
        return bytes([(data >> 16) & 0xFF, (data >> 8) & 0xFF, data & 0xFF])

    def _fail(self, reason: str, emitted: bytes = b"") -> bytes:
        self.error = reason
        # What Jackson had decoded of an unpadded last unit is what Java decodes of it.
        return emitted

    def end(self) -> bytes:
        """The closing quote the engine puts after the value, then the end of the text."""
        tail = self.char(0x22)
        if self.busy:
            self.error = "an unfinished escape or unit"
        return tail


def unescaped(escape: bytearray) -> int | None:
    """A JSON escape's character once complete (None: more to come; -1: invalid)."""
    if len(escape) < 2:
        return None
    kind = escape[1]
    simple = _SIMPLE_ESCAPES.get(kind)
    if simple is not None:
        return simple
    if kind != 0x75:  # u
        return -1
    if len(escape) < 6:
        if not all(c in _HEX for c in escape[2:]):
            return -1
        return None
    digits = bytes(escape[2:6])
    if not all(c in _HEX for c in digits):
        return -1
    return int(digits, 16)


_SIMPLE_ESCAPES = {
    0x62: 0x08,
    0x74: 0x09,
    0x6E: 0x0A,
    0x66: 0x0C,
    0x72: 0x0D,
    0x22: 0x22,
    0x2F: 0x2F,
    0x5C: 0x5C,
}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def shown(char: int) -> str:
    return repr(chr(char)) if 0x20 < char < 0x7F else f"U+{char:04X}"


# commons-codec's DECODE_TABLE: both alphabets, RFC 4648 §4 and §5.
_CODEC_BITS = {**_BITS, 0x2D: 62, 0x5F: 63}


class CodecDecoding:
    """Camunda 7.24's org.camunda.bpm.engine.impl.digest._apacheCommonsCodec.Base64
    .decodeBase64(String), read from its bytecode: over the value's UTF-8 bytes, a byte
    of either alphabet counts, any other is skipped, the first `=` ends the value; a last
    unit of 2 or 3 characters gives 1 or 2 bytes, of 1 nothing. It never refuses."""

    def __init__(self) -> None:
        self.ended = False
        self._modulus = 0
        self._data = 0

    @property
    def busy(self) -> bool:
        return not self.ended

    @property
    def aligned(self) -> bool:
        return not self.ended and self._modulus == 0

    def bulk(self, run: bytes) -> bytes:
        return _bulk(self, run)

    def char(self, char: int) -> bytes:
        if self.ended:
            return b""
        if char == 0x3D:
            return self.end()
        bits = _CODEC_BITS.get(char)
        if bits is None:
            return b""
        self._data = (self._data << 6) | bits
        self._modulus = (self._modulus + 1) % 4
        if self._modulus:
            return b""
        data, self._data = self._data, 0
        return bytes([(data >> 16) & 0xFF, (data >> 8) & 0xFF, data & 0xFF])

    def end(self) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        if self._modulus == 2:
            return bytes([(self._data >> 4) & 0xFF])
        if self._modulus == 3:
            data = self._data >> 2
            return bytes([(data >> 8) & 0xFF, data & 0xFF])
        return b""


FILE, BYTES = "file", "bytes"  # the engine's type names, first letter lower-cased
# While the two agree, one may run a few bytes ahead of the other: a `=` ends
# commons-codec's unit at once, Jackson's a character later, and an escape holds Jackson
# back for up to six. More than this, and they cannot be agreeing.
_AHEAD_BYTES = 64


class ValueDecoding:
    """One value, decoded as the engine decodes it for either binary type (module
    docstring). `known`: the value's type as far as its object has said by its start."""

    def __init__(self, known: str | None) -> None:
        self.java = JavaDecoding()
        self.jackson = JacksonDecoding()
        self.codec = CodecDecoding()
        # Whose bytes go on: None while the two agree, then the type's they follow.
        self._follows: str | None = known
        self._ahead = {FILE: bytearray(), BYTES: bytearray()}
        self.decoded_bytes = {FILE: 0, BYTES: 0}

    @property
    def busy(self) -> bool:
        """Whether more characters can still change what any decoder gives or says."""
        return self.java.error is None or self.jackson.busy or not self.codec.ended

    def exact_for(self, engine_type: str) -> bool:
        """Whether the bytes handed on are those the engine stores for `engine_type`."""
        return self._follows in (None, engine_type)

    def run(self, run: bytes) -> bytes:
        """Characters of the alphabet."""
        self.java.run(len(run))
        whole = 0
        common = b""
        lead = b""
        start = 0
        # A unit cut by the last piece, in the same place for both: finished one by one,
        # so that the rest of the run is whole units for both.
        while start < len(run) and self._in_step and not self.codec.aligned:
            lead += self._both(self.jackson.char(run[start]), self.codec.char(run[start]))
            start += 1
        if start:
            run = run[start:]
        if self.jackson.aligned and self.codec.aligned:
            # Whole units decode the same for both, and leave both at a unit's start.
            whole = len(run) // 4 * 4
            common = _decode(run[:whole]) if whole else b""
            self.decoded_bytes[FILE] += len(common)
            self.decoded_bytes[BYTES] += len(common)
        rest = run[whole:]
        if not rest:
            return lead + common if lead else common
        return lead + common + self._both(self.jackson.bulk(rest), self.codec.bulk(rest))

    @property
    def _in_step(self) -> bool:
        """Both decoders at the same place of the same unit, nothing else pending."""
        jackson, codec = self.jackson, self.codec
        return (
            jackson.busy
            and not codec.ended
            and not jackson._escape
            and jackson._index == codec._modulus
            and not self._ahead[BYTES]
            and not self._ahead[FILE]
        )

    def char(self, char: int) -> bytes:
        """Any other character (0x80 for every one outside ASCII: no decoder takes those)."""
        self.java.char(char)
        return self._both(self.jackson.char(char), self.codec.char(char))

    def end(self) -> bytes:
        self.java.end()
        return self._both(self.jackson.end(), self.codec.end(), final=True)

    def _both(self, as_bytes: bytes, as_file: bytes, *, final: bool = False) -> bytes:
        self.decoded_bytes[BYTES] += len(as_bytes)
        self.decoded_bytes[FILE] += len(as_file)
        if self._follows == BYTES:
            return as_bytes
        if self._follows == FILE:
            return as_file
        ahead_bytes, ahead_file = self._ahead[BYTES], self._ahead[FILE]
        ahead_bytes += as_bytes
        ahead_file += as_file
        agreed = min(len(ahead_bytes), len(ahead_file))
        if ahead_bytes[:agreed] != ahead_file[:agreed]:
            return self._part()
        out = bytes(ahead_bytes[:agreed])
        del ahead_bytes[:agreed]
        del ahead_file[:agreed]
        # One has stopped for good and the other has gone on: they read it differently.
        parted = (ahead_file and not self.jackson.busy) or (ahead_bytes and self.codec.ended)
        if parted or (final and (ahead_bytes or ahead_file)):
            return out + self._part()
        if max(len(ahead_bytes), len(ahead_file)) > _AHEAD_BYTES:
            return out + self._part()
        return out

    def _part(self) -> bytes:
        """The decoders disagree, and the type is not known yet: from here on, follow
        commons-codec, which gives bytes for any value (ValueDecoding's docstring says
        what the other type then gets). Which one is followed depends on nothing but the
        value, however it arrives in pieces."""
        self._follows = FILE
        out = bytes(self._ahead[FILE])
        self._ahead[BYTES].clear()
        self._ahead[FILE].clear()
        return out
