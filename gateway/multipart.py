"""The engine's multipart form, read the way the engine reads it: pure, no I/O.

engine-rest parses `multipart/form-data` with commons-fileupload 1.6 (`MultipartStream`,
`FileUploadBase`, `ParameterParser`) and then applies its own rules
(`AbstractVariablesResource.setBinaryVariable`, `VariableValueDto.fromFormPart`). This
module mirrors both, so the gateway rejects early exactly what the engine would reject
late (often as an opaque 400 or a 500), and never rejects what the engine accepts.

`FormScanner` watches a body go by chunk by chunk in O(chunk) memory; the body itself is
forwarded unchanged by the proxy. `releasable()` says how much of it may already go to the
engine: the closing delimiter is held back until the form has been checked, so an invalid
form never reaches the engine complete, and the engine writes nothing. With `report=True`,
`feed` also says where each part begins and ends and hands over its content, as views into
the chunk where it can, so an upload can be hashed and scanned as it passes.
"""

from __future__ import annotations

import enum
import functools
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes

# commons-fileupload 1.6 FileUploadBase.DEFAULT_PART_HEADER_SIZE_MAX: the header block of a
# part, its closing CRLFCRLF included, may be 512 bytes (measured: 512 passes, 513 fails).
PART_HEADER_LIMIT_BYTES = 512
# valueType and type parts are short names; longer ones cannot be valid.
TEXT_PART_KEEP_BYTES = 1024
TEXT_PARTS = frozenset({"valueType", "type"})

CRLF = b"\r\n"
HEADER_END = b"\r\n\r\n"


class FormError(ValueError):
    """A form the engine would refuse; the message says what is wrong, for the client."""


@dataclass(frozen=True)
class Part:
    """One part as the engine sees it: its field name, filename and content type as
    commons-fileupload extracts them, and the content of short text parts."""

    field_name: str | None
    filename: str | None
    content_type: str | None
    text: bytes | None = None  # content of valueType/type parts, None when too long


def parse_parameters(value: str, separator: str = ";") -> dict[str, str | None]:
    """commons-fileupload's ParameterParser: `name=value` pairs split at `separator`
    outside double quotes; names lower-cased and trimmed, RFC 2231 `*` stripped; values
    trimmed and unquoted (escapes kept as they are, as the engine does); later names win."""
    params: dict[str, str | None] = {}
    position, length = 0, len(value)
    while position < length:
        start = position
        while position < length and value[position] not in ("=", separator):
            position += 1
        name = value[start:position].strip()
        parameter_value: str | None = None
        if position < length and value[position] == "=":
            position += 1
            start, quoted, escaped = position, False, False
            while position < length:
                char = value[position]
                if not quoted and char == separator:
                    break
                if not escaped and char == '"':
                    quoted = not quoted
                escaped = not escaped and char == "\\"
                position += 1
            token = value[start:position].strip()
            if len(token) >= 2 and token[0] == '"' and token[-1] == '"':
                token = token[1:-1]
            parameter_value = token or None
            if parameter_value is not None and name.endswith("*"):
                parameter_value = _decode_rfc2231(parameter_value)
        if position < length and value[position] == separator:
            position += 1
        if name:
            params[name.removesuffix("*").lower()] = parameter_value
    return params


def _decode_rfc2231(value: str) -> str:
    charset, _, rest = value.partition("'")
    _, _, encoded = rest.partition("'")
    if not encoded:
        return value
    # What cannot be decoded is kept as given, as ParameterParser does: an unknown charset,
    # bytes not in it, a NUL (ValueError) or a surrogate-escaped byte (UnicodeEncodeError).
    try:
        return unquote_to_bytes(encoded).decode(charset or "utf-8")
    except (LookupError, ValueError):
        return value


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a `multipart/*` Content-Type, as FileUploadBase.getBoundary reads it
    (parameters split at whichever of `;` and `,` comes first)."""
    separators = [s for s in (";", ",") if s in content_type]
    separator = min(separators, key=content_type.index) if separators else ";"
    boundary = parse_parameters(content_type, separator).get("boundary")
    return boundary.encode("latin-1", errors="replace") if boundary else None


def is_multipart_form(content_type: str | None) -> bool:
    return content_type is not None and content_type.strip().lower().startswith(
        "multipart/form-data"
    )


def parse_part_headers(block: bytes) -> Part:
    """Field name, filename and content type from a part's header block (without the
    final CRLFCRLF), as FileUploadBase.getParsedHeaders and getFieldName/getFileName do."""
    text = block.decode("utf-8", errors="replace")  # the engine runs with file.encoding=UTF-8
    headers: dict[str, str] = {}
    lines = text.split("\r\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            break
        while index < len(lines) and lines[index][:1] in (" ", "\t") and lines[index].strip():
            line += " " + lines[index].lstrip(" \t")
            index += 1
        name, colon, header_value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), header_value.strip())  # first one wins
    disposition = headers.get("content-disposition")
    field_name: str | None = None
    filename: str | None = None
    if disposition is not None:
        lowered = disposition.lower()
        params = parse_parameters(disposition)
        if lowered.startswith("form-data"):
            given_name = params.get("name")
            field_name = given_name.strip() if given_name is not None else None
        if (lowered.startswith(("form-data", "attachment"))) and "filename" in params:
            filename = (params["filename"] or "").strip()
    return Part(field_name, filename, headers.get("content-type"))


@dataclass(frozen=True)
class PartBegins:
    part: Part  # its headers; `text` is not known yet


@dataclass(frozen=True)
class Content:
    data: bytes | memoryview  # the next bytes of the current part's content


@dataclass(frozen=True)
class PartEnds:
    part: Part  # as it will be in `parts` (None field names are skipped there)


Event = PartBegins | Content | PartEnds


class _State(enum.Enum):
    PREAMBLE = "preamble"
    MARKER = "marker"  # just after a delimiter: "--" ends the form, CRLF starts a part
    HEADERS = "headers"
    BODY = "body"
    CLOSED = "closed"


@dataclass
class FormScanner:
    """Follows a multipart body as commons-fileupload's MultipartStream will read it."""

    boundary: bytes
    header_limit_bytes: int = PART_HEADER_LIMIT_BYTES
    report: bool = False  # feed() returns the events of what it saw
    parts: list[Part] = field(default_factory=list)
    close_offset: int | None = None  # where the closing delimiter starts, once seen
    _state: _State = _State.PREAMBLE
    _buffer: bytearray = field(default_factory=bytearray)
    _offset: int = 0  # stream offset of _buffer[0]
    _fed: int = 0
    _released: int = 0
    _header_bytes: int = 0
    _header_matched: int = 0
    _header_block: bytearray = field(default_factory=bytearray)
    _delimiter_start: int = 0
    _current: Part | None = None
    _text: bytearray | None = None
    _text_overflow: bool = False
    _events: list[Event] = field(default_factory=list)

    @functools.cached_property
    def delimiter(self) -> bytes:
        return b"\r\n--" + self.boundary

    @property
    def closed(self) -> bool:
        return self.close_offset is not None

    def feed(self, data: bytes | memoryview) -> list[Event]:
        """Follows `data`; with `report`, returns what it saw: part boundaries and content,
        valid until the next call (views into `data`)."""
        self._fed += len(data)
        if self._state is _State.CLOSED:
            return []  # the epilogue: the engine never reads it
        if self.report:
            self._events = []
        if self._state is _State.BODY and self._text is None and self._content_only(data):
            return self._events
        self._buffer += data
        while self._step():
            pass
        return self._events

    def _content_only(self, data: bytes | memoryview) -> bool:
        """True, having moved past it, when `data` is file content with no delimiter in it
        or at its joint with what came before: the hot path of a large upload, which then
        copies nothing but the last few bytes."""
        keep = len(self.delimiter) - 1
        if not isinstance(data, bytes) or len(data) <= keep:
            return False
        # Outside the text parts the buffer holds at most `keep` bytes here (see _body).
        if self.delimiter in bytes(self._buffer) + data[:keep] or self.delimiter in data:
            return False
        if self.report:
            if self._buffer:
                self._events.append(Content(bytes(self._buffer)))
            self._events.append(Content(memoryview(data)[:-keep]))
        self._offset += len(self._buffer) + len(data) - keep
        self._buffer = bytearray(data[-keep:])
        return True

    def releasable(self) -> int:
        """How many bytes from the start may be forwarded before the form is approved."""
        if self.close_offset is not None:
            limit = self.close_offset
        else:
            # A delimiter and its two marker bytes may be arriving: hold them back.
            limit = self._fed - (len(self.delimiter) + 2)
        self._released = max(self._released, limit)
        return self._released

    def finish(self) -> list[Part]:
        """At the end of the body: the parts, or FormError where the engine would fail."""
        if self._state is _State.CLOSED:
            return self.parts
        if self._state is _State.PREAMBLE:
            return []  # the engine finds no delimiter, hence no parts
        if self._state is _State.HEADERS:
            raise FormError(
                "The multipart body ends inside the headers of a part."
                + self._line_ending_hint(bytes(self._buffer))
            )
        raise FormError(
            "The multipart body ends without its closing boundary "
            f"'--{self.boundary.decode('latin-1')}--' (was the upload cut short?)."
        )

    def _line_ending_hint(self, tail: bytes) -> str:
        seen = bytes(self._header_block) + tail
        if b"\n\n" in seen and HEADER_END not in seen:
            return " Its lines end in a bare LF; multipart lines must end in CRLF."
        return ""

    def _consume(self, count: int) -> bytes:
        taken = bytes(self._buffer[:count])
        self._skip(count)
        return taken

    def _skip(self, count: int) -> None:
        del self._buffer[:count]
        self._offset += count

    def _step(self) -> bool:
        if self._state is _State.PREAMBLE:
            # The first delimiter need not follow a CRLF (MultipartStream.skipPreamble).
            first = b"--" + self.boundary
            found = self._buffer.find(first)
            if found < 0:
                self._skip(max(0, len(self._buffer) - len(first) + 1))
                return False
            self._delimiter_start = self._offset + found
            self._skip(found + len(first))
            self._state = _State.MARKER
            return True
        if self._state is _State.MARKER:
            return self._marker()
        if self._state is _State.HEADERS:
            return self._headers()
        if self._state is _State.BODY:
            return self._body()
        return False

    def _marker(self) -> bool:
        if not self._buffer:
            return False
        if self._buffer[0] == 0x0A:  # a bare LF: accepted by MultipartStream.readBoundary
            self._skip(1)
            self._start_headers()
            return True
        if len(self._buffer) < 2:
            return False
        marker = self._consume(2)
        if marker == CRLF:
            self._start_headers()
            return True
        # "--" closes the form; anything else also ends the engine's parsing there
        # (measured with the engines: `\r\n--boundaryXY` ends the last part).
        self.close_offset = self._delimiter_start
        self._state = _State.CLOSED
        self._buffer.clear()
        return False

    def _start_headers(self) -> None:
        self._state = _State.HEADERS
        self._header_bytes = self._header_matched = 0
        self._header_block.clear()

    def _headers(self) -> bool:
        # Byte by byte, as MultipartStream.readHeaders matches CRLFCRLF and counts the limit.
        consumed = 0
        for byte in self._buffer:
            consumed += 1
            self._header_bytes += 1
            if self._header_bytes > self.header_limit_bytes:
                raise FormError(
                    f"A part's header block is over the engine's limit of "
                    f"{self.header_limit_bytes} bytes (its headers, or a very long filename)."
                    + self._line_ending_hint(bytes(self._buffer[:consumed]))
                )
            if byte == HEADER_END[self._header_matched]:
                self._header_matched += 1
            else:
                self._header_matched = 0
            if self._header_matched == len(HEADER_END):
                block = bytes(self._header_block) + self._consume(consumed)
                self._begin_part(parse_part_headers(block[: -len(HEADER_END)]))
                return True
        self._header_block += self._consume(consumed)
        return False

    def _begin_part(self, part: Part) -> None:
        self._current = part
        if self.report:
            self._events.append(PartBegins(part))
        self._text = bytearray() if part.field_name in TEXT_PARTS else None
        self._text_overflow = False
        self._state = _State.BODY

    def _body(self) -> bool:
        found = self._buffer.find(self.delimiter)
        if found < 0:
            keep = len(self.delimiter) - 1
            self._pass_content(max(0, len(self._buffer) - keep))
            return False
        self._pass_content(found)
        self._delimiter_start = self._offset
        self._skip(len(self.delimiter))
        self._end_part()
        self._state = _State.MARKER
        return True

    def _pass_content(self, count: int) -> None:
        """Moves past `count` bytes of part content, keeping them only for short text parts
        (the hot path for file content copies nothing)."""
        if self._text is not None and not self._text_overflow:
            if len(self._text) + count > TEXT_PART_KEEP_BYTES:
                self._text_overflow = True
            else:
                self._text += self._buffer[:count]
        if self.report and count:
            self._events.append(Content(bytes(self._buffer[:count])))
        self._skip(count)

    def _end_part(self) -> None:
        part = self._current
        assert part is not None
        text = None if self._text is None or self._text_overflow else bytes(self._text)
        ended = Part(part.field_name, part.filename, part.content_type, text)
        # Parts without a form-data name are skipped by the engine (FileUploadBase).
        if part.field_name is not None:
            self.parts.append(ended)
        if self.report:
            self._events.append(PartEnds(ended))
        self._current = None


def check_variable_form(parts: list[Part]) -> None:
    """The engine's rules for `POST …/variables/{name}/data`
    (AbstractVariablesResource.setBinaryVariable); later parts of the same name win."""
    named = {part.field_name: part for part in parts}
    data = named.get("data")
    if "type" in named:
        # Deprecated form: a serialized Java object as JSON, with its class in `type`.
        if data is None:
            raise FormError("A form with a 'type' part needs a 'data' part with the JSON value.")
        if data.content_type is None or "application/json" not in data.content_type.lower():
            raise FormError(
                "Unrecognized content type for serialized java type: "
                f"{data.content_type}; the 'data' part must be application/json."
            )
        return
    if data is None:
        raise FormError(
            "The form has no part named 'data': send the content as a part named 'data' "
            "(and optionally a 'valueType' part: Bytes or File)."
        )
    value_type = "Bytes"
    value_type_part = named.get("valueType")
    if value_type_part is not None:
        if value_type_part.content_type is not None and (
            "text/plain" not in value_type_part.content_type
        ):
            raise FormError("Form part with name 'valueType' must have a text/plain value")
        if value_type_part.text is None:
            raise FormError("The 'valueType' part is too long: use Bytes or File.")
        value_type = value_type_part.text.decode("utf-8", errors="replace")
    if not value_type:
        raise FormError("The 'valueType' part is empty: use Bytes or File.")
    # VariableValueDto.fromRestApiTypeName lower-cases only the first letter.
    engine_name = value_type[0].lower() + value_type[1:]
    if engine_name not in ("bytes", "file", "string"):
        raise FormError(f"Unsupported value type '{value_type}': use Bytes or File.")
    if engine_name == "file" and data.filename is None:
        raise FormError(
            'A File variable needs a filename: add filename="…" to the Content-Disposition '
            "of the 'data' part."
        )


@dataclass(frozen=True)
class WrappedForm:
    """The engine's form around a raw body: `head` + body + `tail`."""

    content_type: str
    head: bytes
    tail: bytes
    part: Part  # the body's part, as the engine will see it
    value_type: str  # the variable's type, as the form's valueType part says it

    def length(self, body_length: int) -> int:
        return len(self.head) + body_length + len(self.tail)


def _disposition_filename(filename: str) -> str:
    if filename.isascii() and filename.isprintable() and not any(c in filename for c in '"\\'):
        return f'; filename="{filename}"'
    # RFC 2231 form: the engine's ParameterParser decodes it.
    return f"; filename*=UTF-8''{quote(filename, safe='')}"


def wrap_raw_body(
    *, value_type: str, filename: str | None, content_type: str | None
) -> WrappedForm:
    """The engine's variable form for a raw upload: the body becomes the `data` part.

    For File variables the engine reads the MIME type from the part's Content-Type and the
    encoding from its `encoding` parameter (VariableValueDto.fromFormPart), so a charset
    given by the client is passed on as `encoding`.
    """
    media_type, _, rest = (content_type or "application/octet-stream").partition(";")
    media_type = media_type.strip() or "application/octet-stream"
    charset = parse_parameters(rest).get("charset") if rest else None
    part_type = media_type + (f"; encoding={charset}" if charset and filename else "")
    return form_around(Part("data", filename, part_type), [("valueType", value_type.encode())])


def form_around(data: Part, texts: list[tuple[str, bytes]]) -> WrappedForm:
    """The engine's variable form with `data`'s headers, the content to come between `head`
    and `tail`, and the short text parts `texts` (valueType, type) after it. Its valueType
    is the engine's default, Bytes, when `texts` has none."""
    boundary = "engine-gateway-" + secrets.token_hex(16)
    disposition = 'form-data; name="data"' + (
        _disposition_filename(data.filename) if data.filename is not None else ""
    )
    typed = "" if data.content_type is None else f"Content-Type: {data.content_type}\r\n"
    # The client's Content-Type goes into the part as the bytes it sent: aiohttp hands over
    # a byte that is not UTF-8 as a surrogate escape, which becomes that byte again here.
    head = (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{typed}\r\n").encode(
        errors="surrogateescape"
    )
    if len(head) - len(f"--{boundary}\r\n") > PART_HEADER_LIMIT_BYTES:
        raise FormError(
            f"The filename is too long: the engine allows {PART_HEADER_LIMIT_BYTES} bytes "
            "for a part's headers."
        )
    tail = b"".join(
        (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            "Content-Type: text/plain; charset=UTF-8\r\n\r\n"
        ).encode()
        + text
        for name, text in texts
    )
    tail += f"\r\n--{boundary}--\r\n".encode()
    value_type = dict(texts).get("valueType", b"Bytes").decode("utf-8", errors="replace")
    return WrappedForm(f"multipart/form-data; boundary={boundary}", head, tail, data, value_type)
