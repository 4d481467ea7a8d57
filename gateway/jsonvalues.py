"""The engine's typed File and Bytes values in a JSON body, found and decoded as the engine
decodes them, in pieces, while the body streams: pure, no I/O.

engine-rest reads variables from JSON as `VariableValueDto`s (`{"type": …, "value": …,
"valueInfo": {…}}`) in maps at fixed places of each endpoint's body (routes.JSON_DOORS).
`ValueScanner` follows a body chunk by chunk, knows at every point where in the document it
is, and reports the `value` strings of the objects at those places: where each begins, its
decoded bytes as they pass, where it ends, and, when its object closes, whether the engine
will store it as a File or Bytes variable. Memory is O(chunk) whatever the size of a value:
a value is never held, and `value` may come before or after `type` in its object (the
decoding is done for both types at once until the type is known).

How the engine reads such a value (VariableValueDto.toTypedValue, Operaton 1.0.3 and
Camunda 7.24; tried against both, docs/files-in-json.md):
- the type name's first letter is lower-cased and looked up: `File`, `file`, `Bytes`,
  `bytes` are binary, `FILE` is not a type at all; the last of repeated keys wins;
- the value is base64, decoded as base64decoding.py says: a Bytes value by Jackson in both
  engines (refused here where Jackson refuses it), a File value strictly by Operaton and
  leniently by Camunda 7 (never refused here: `strict_file_error` says why Operaton will);
  a Bytes value given as a number or `true` is decoded from its text;
- every JSON string is limited by Jackson's StreamReadConstraints (20,000,000 characters
  by default, counted in UTF-16 units after unescaping): the limit is checked here on the
  values, so a file too large for JSON is refused before the engine has the whole body.

The grammar followed is JSON as Jackson reads it by default, leniently where that cannot
change the structure (numbers, literals and white space are only skipped, string contents
outside the values are not validated): whatever the engine's parser accepts, this scanner
reads the same way, and what this scanner refuses the engine's parser refuses too. The
text is read as Jackson reads it (jsontext.py: its encoding detection, its UTF-8 without
the overlong check), and the scan stops at the end of the root value.

Why not a library: ijson and json-stream yield each string whole, so a 15 MB file would be
held in memory (json-stream's streamed strings are still an open request); none knows the
engine's typed values or its base64 decoders. The work here is in Python only at the
JSON's structure and at the few odd characters of a value: long strings are crossed with
bytes.find, checked against the alphabet with bytes.translate and decoded in bulk
(base64decoding.py), about 1 GB/s for a File value here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway import base64decoding, jsontext

# Jackson's StreamReadConstraints.DEFAULT_MAX_STRING_LEN (2.15.1 and later).
STRING_LIMIT_CHARS = 20_000_000
# The engine's names of the binary types, after its first-letter lower-casing.
BINARY_TYPES = {"file": "File", "bytes": "Bytes"}
# Longer keys, types and file names are only ever matched or quoted, never needed whole.
SHORT_STRING_KEEP_BYTES = 256

ANY_KEY = "*"
ITEM = "[]"

Place = tuple[str, ...]


class NotJson(ValueError):
    """The body is not JSON the engine's parser would read; the message says where."""


class InvalidValue(ValueError):
    """A typed value the engine would refuse (or fail on); the message says which and why."""


def read_as_json(content_type: str | None) -> bool:
    """Whether the engine reads a body with this Content-Type as JSON: its JSON resources
    consume application/json, in any letter case and with any parameters (the charset is
    ignored: Jackson detects the encoding); anything else, or none, gets 415 (measured)."""
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"


def parse_place(text: str) -> Place:
    """`variables.*` → ("variables", "*"); `instructions[].variables.*`; `[].variables.*`;
    `.` for the body itself. Each place names where a typed value (an object) stands."""
    if text == ".":
        return ()
    steps: list[str] = []
    for step in text.split("."):
        name = step.removesuffix(ITEM)
        if name:
            steps.append(name)
        if step.endswith(ITEM):
            steps.append(ITEM)
    return tuple(steps)


@dataclass(frozen=True)
class ValueBegins:
    index: int  # numbers the body's value strings, in order
    variable: str | None  # its map key, where it has one
    # Where its characters start in the body's text (`ValueScanner.text`): after the
    # opening quote; None for a number or literal.
    start: int | None = None


@dataclass(frozen=True)
class Decoded:
    data: bytes  # the next decoded bytes of the current value


@dataclass(frozen=True)
class ValueEnds:
    index: int
    end: int | None = None  # where its closing quote is in the text; None for a literal


@dataclass(frozen=True)
class Stored:
    """A File or Bytes value the engine will store (its object has closed)."""

    index: int  # the value string that holds it (the last `value`, as Jackson keeps it)
    variable: str | None
    type_name: str  # File or Bytes
    filename: str | None
    decoded_bytes: int
    # Whether the Decoded events were these bytes. Not so only where the value came before
    # its type and the File and Bytes decoders read it differently (base64decoding.py).
    exact: bool = True


@dataclass(frozen=True)
class TypedValueEnds:
    stored: Stored | None  # None: not a binary value, or no string value: nothing to scan


Event = ValueBegins | Decoded | ValueEnds | TypedValueEnds

_ALPHABET_RUN = re.compile(rb"[A-Za-z0-9+/]+")


class _ValueString:
    """One `value` string: counted against the limit, decoded for both binary types."""

    def __init__(self, index: int, variable: str | None, known: str | None) -> None:
        self.index = index
        self.variable = variable
        self.chars = 0  # UTF-16 units after unescaping, as Jackson counts them
        self.decoding = base64decoding.ValueDecoding(known)
        self.literal = False  # a number or true: its text, not a string
        self._utf8 = jsontext.Utf8()

    def run(self, text: bytes) -> bytes:
        """Raw characters of the string (no quote, no backslash)."""
        out = bytearray()
        position = 0
        busy = self.decoding.busy
        if text.isascii() and not self._utf8.pending:
            self.chars += len(text)
            if busy and not text.translate(None, base64decoding.ALPHABET):
                return self.decoding.run(text)  # base64 as clients send it: one run
            while position < len(text) and busy:
                found = _ALPHABET_RUN.match(text, position)
                if found is not None:
                    out += self.decoding.run(found.group())
                    position = found.end()
                else:
                    out += self.decoding.char(text[position])
                    position += 1
            return bytes(out)
        # Jackson reads UTF-8 without refusing overlong forms (C0 AF is '/'): so do we,
        # or a value could hide its base64 from the scanner behind them.
        for char in self._utf8.decode(text):
            self.chars += 1 if char < 0x10000 else 2
            if busy:
                out += self.decoding.char(char if char < 0x80 else 0x80)
        return bytes(out)

    def escaped(self, char: int) -> bytes:
        """One character the body gave as a JSON escape. The engine's Bytes decoding parses
        the unescaped text as JSON again: a quote or backslash escaped here is one there."""
        self.chars += 1
        if not self.decoding.busy:
            return b""
        return self.decoding.char(char if char < 0x80 else 0x80)

    def end(self) -> bytes:
        return self.decoding.end()


@dataclass
class _Typed:
    """An object at a typed value's place, as Jackson fills its VariableValueDto: the last
    of each property wins."""

    variable: str | None
    type_name: str | None = None  # None: absent, null or not a string
    value: _ValueString | None = None  # None: the last `value` was not a string
    filename: str | None = None


@dataclass
class _Frame:
    is_object: bool
    alive: tuple[tuple[Place, int], ...] = ()  # places still possible below
    typed: _Typed | None = None  # this object is a typed value
    info_of: _Typed | None = None  # this object is that typed value's valueInfo
    key: str | None = None  # the key whose value comes next
    key_whole: bool = True  # False: the key was longer than we keep


class _Expect:
    VALUE = 0
    VALUE_OR_CLOSE = 1
    KEY_OR_CLOSE = 2
    KEY = 3
    COLON = 4
    COMMA_OR_CLOSE = 5
    DONE = 6


class _Role:
    SKIP = 0
    KEY = 1
    TYPE = 2
    VALUE = 3
    FILENAME = 4


_SHORT_ESCAPES = frozenset(b'"\\/bfnrt')
_LITERAL_END = re.compile(rb'[\x00-\x20,:\[\]{}"]')
_STRUCTURE = re.compile(rb"[^\x00-\x20]")


@dataclass
class ValueScanner:
    """Follows a JSON body as the engine's parser reads it and reports its typed values
    (module docstring). `feed` returns what it saw in each chunk; it raises NotJson or
    InvalidValue where the engine would refuse the body."""

    places: tuple[Place, ...]
    string_limit_chars: int = STRING_LIMIT_CHARS  # 0: no limit
    report: bool = True
    root_variable: str | None = None  # the variable a typed value at `.` is (from the path)
    _consumed: int = 0  # bytes of the (UTF-8) text scanned before the current piece
    _at: int = 0  # where the current token is, for error messages
    _expect: int = _Expect.VALUE
    _stack: list[_Frame] = field(default_factory=list)
    _in_string: bool = False
    _in_literal: bool = False
    _role: int = _Role.SKIP
    _kept: bytearray = field(default_factory=bytearray)  # a key's, type's or name's text
    _kept_whole: bool = True
    _escape: bytearray = field(default_factory=bytearray)
    _value: _ValueString | None = None
    _values: int = 0
    _literal: bytearray | None = None  # a number or literal as a typed value's `value`
    # The first File value java.util.Base64 (Operaton) refuses, as a message for the client.
    strict_file_error: str | None = None
    _events: list[Event] = field(default_factory=list)
    _text: jsontext.BodyText = field(default_factory=jsontext.BodyText)
    # The body as the text scanned (UTF-8, as jsontext reads it) by the last feed or
    # finish: where ValueBegins.start and ValueEnds.end count.
    text: bytes = b""
    _quote_at: int = 0  # where the current string's closing quote is, once found

    @property
    def done(self) -> bool:
        """The root value has ended: the engine reads no further."""
        return self._expect == _Expect.DONE

    def feed(self, data: bytes | memoryview) -> list[Event]:
        self._events = []
        self.text = text = self._text.feed(bytes(data))
        if text:
            self._scan(text)
        return self._events

    def finish(self) -> list[Event]:
        """At the end of the body. A body cut short is left to the engine to refuse."""
        self._events = []
        self.text = text = self._text.finish()
        if text:
            self._scan(text)
        return self._events

    # -- the structure -------------------------------------------------------------------

    def _scan(self, text: bytes) -> None:
        try:
            self._pieces(text)
        finally:
            self._consumed += len(text)

    def _pieces(self, text: bytes) -> None:
        position, end = 0, len(text)
        while position < end:
            if self._in_string:
                position = self._string(text, position)
                continue
            if self._in_literal:
                found = _LITERAL_END.search(text, position)
                stop = end if found is None else found.start()
                if self._literal is not None and len(self._literal) <= _LITERAL_KEEP_BYTES:
                    self._literal += text[position:stop]
                position = stop
                if found is not None:
                    self._in_literal = False
                    self._literal_ends()
                    self._value_done()
                continue
            if self._expect == _Expect.DONE:
                return
            found = _STRUCTURE.search(text, position)
            if found is None:
                position = end
                continue
            position = found.start()
            self._token(text[position], position)
            position += 1

    def _token(self, char: int, position: int) -> None:
        self._at = self._consumed + position
        expect = self._expect
        if expect in (_Expect.VALUE, _Expect.VALUE_OR_CLOSE):
            if char == 0x5D and expect == _Expect.VALUE_OR_CLOSE:  # ]
                self._close(is_object=False)
            else:
                self._begin_value(char)
        elif expect in (_Expect.KEY_OR_CLOSE, _Expect.KEY):
            if char == 0x7D and expect == _Expect.KEY_OR_CLOSE:  # }
                self._close(is_object=True)
            elif char == 0x22:
                self._start_string(_Role.KEY)
            else:
                self._unexpected(char, "a field name in double quotes")
        elif expect == _Expect.COLON:
            if char != 0x3A:
                self._unexpected(char, "':'")
            self._expect = _Expect.VALUE
        elif expect == _Expect.COMMA_OR_CLOSE:
            frame = self._stack[-1]
            if char == 0x2C:
                self._expect = _Expect.KEY if frame.is_object else _Expect.VALUE
            elif char == (0x7D if frame.is_object else 0x5D):
                self._close(is_object=frame.is_object)
            else:
                self._unexpected(char, "',' or the end of the " + _container(frame))

    def _begin_value(self, char: int) -> None:
        parent = self._stack[-1] if self._stack else None
        typed = parent.typed if parent is not None else None
        if char in (0x7B, 0x5B) and typed is not None and parent is not None:
            self._not_a_string(typed, parent)
        if char == 0x7B:  # {
            self._stack.append(self._object_frame(parent))
            self._expect = _Expect.KEY_OR_CLOSE
            return
        if char == 0x5B:  # [
            self._stack.append(_Frame(is_object=False, alive=self._below(parent)))
            self._expect = _Expect.VALUE_OR_CLOSE
            return
        if char in (0x5D, 0x7D, 0x2C, 0x3A):
            self._unexpected(char, "a value")
        if char == 0x22:
            role = _Role.SKIP
            if typed is not None and parent is not None and parent.key_whole:
                if parent.key == "type":
                    role = _Role.TYPE
                elif parent.key == "value":
                    role = _Role.VALUE
            elif (
                parent is not None
                and parent.info_of is not None
                and parent.key == "filename"
                and parent.key_whole
            ):
                role = _Role.FILENAME
            self._start_string(role)
            return
        # A number, true, false or null: skipped (Jackson checks its spelling), but kept
        # as a typed value's `value`: the engine decodes a Bytes value from its text.
        if typed is not None and parent is not None:
            self._not_a_string(typed, parent)
            if parent.key_whole and parent.key == "value":
                self._literal = bytearray([char])
        self._in_literal = True

    def _literal_ends(self) -> None:
        literal, self._literal = self._literal, None
        if literal is None:
            return
        frame = self._stack[-1]
        assert frame.typed is not None
        text = _literal_text(bytes(literal))
        if text is None:
            return  # null: the engine stores an empty Bytes value, nothing to scan
        value = _ValueString(self._values, frame.typed.variable, base64decoding.BYTES)
        value.literal = True
        self._values += 1
        if self.report:
            self._events.append(ValueBegins(value.index, value.variable))
        self._decoded_by(value, value.run(text.encode()) + value.end())
        frame.typed.value = value
        if self.report:
            self._events.append(ValueEnds(value.index))

    @staticmethod
    def _not_a_string(typed: _Typed, parent: _Frame) -> None:
        """A typed value's `type` or `value` that is not a string replaces the one before."""
        if parent.key_whole and parent.key == "type":
            typed.type_name = None
        elif parent.key_whole and parent.key == "value":
            typed.value = None

    def _object_frame(self, parent: _Frame | None) -> _Frame:
        alive = self._below(parent)
        if any(len(place) == step for place, step in alive):
            variable = self.root_variable if parent is None else None
            if parent is not None and parent.is_object:
                variable = parent.key
            rest = tuple((p, s) for p, s in alive if len(p) != s)
            return _Frame(is_object=True, alive=rest, typed=_Typed(variable))
        if parent is not None and parent.typed is not None and parent.key == "valueInfo":
            return _Frame(is_object=True, info_of=parent.typed)
        return _Frame(is_object=True, alive=alive)

    def _below(self, parent: _Frame | None) -> tuple[tuple[Place, int], ...]:
        """The places still possible for the value that starts here."""
        if parent is None:
            return tuple((place, 0) for place in self.places)
        if parent.is_object:
            key, whole = parent.key, parent.key_whole
            return tuple(
                (place, step + 1)
                for place, step in parent.alive
                if step < len(place) and (place[step] == ANY_KEY or (whole and place[step] == key))
            )
        return tuple(
            (place, step + 1)
            for place, step in parent.alive
            if step < len(place) and place[step] == ITEM
        )

    def _close(self, *, is_object: bool) -> None:
        frame = self._stack.pop()
        if frame.typed is not None:
            self._typed_value_ends(frame.typed)
        self._value_done()

    def _value_done(self) -> None:
        """A value has ended: what comes next depends on its container."""
        if not self._stack:
            self._expect = _Expect.DONE
        else:
            self._expect = _Expect.COMMA_OR_CLOSE

    def _typed_value_ends(self, typed: _Typed) -> None:
        engine_type = _engine_type(typed.type_name)
        value = typed.value
        stored = None
        if engine_type in BINARY_TYPES and value is not None:
            type_name = BINARY_TYPES[engine_type]
            decoding = value.decoding
            if engine_type == base64decoding.BYTES and decoding.jackson.error is not None:
                raise InvalidValue(_invalid_base64(typed, type_name, decoding.jackson.error))
            if engine_type == base64decoding.FILE and value.literal:
                return self._typed_value_stored(None)  # the engine fails on it (500)
            if engine_type == base64decoding.FILE and decoding.java.error is not None:
                # Operaton refuses it (500), Camunda 7 stores what commons-codec makes of it:
                # passed on, and named if the engine's answer is the refusal (upload.py).
                self.strict_file_error = self.strict_file_error or _invalid_base64(
                    typed, type_name, decoding.java.error
                )
            stored = Stored(
                value.index,
                typed.variable,
                type_name,
                typed.filename,
                decoding.decoded_bytes[engine_type],
                decoding.exact_for(engine_type),
            )
        self._typed_value_stored(stored)

    def _typed_value_stored(self, stored: Stored | None) -> None:
        if self.report:
            self._events.append(TypedValueEnds(stored))

    def _unexpected(self, char: int, wanted: str) -> None:
        raise NotJson(
            f"The JSON body has {base64decoding.shown(char)} at byte {self._at} where "
            f"{wanted} should be; the engine would refuse it too."
        )

    # -- strings -------------------------------------------------------------------------

    def _start_string(self, role: int) -> None:
        self._in_string = True
        self._role = role
        self._kept.clear()
        self._kept_whole = True
        if role == _Role.VALUE:
            parent = self._stack[-1]
            assert parent.typed is not None
            known = _engine_type(parent.typed.type_name)
            binary = known if known in BINARY_TYPES else None
            self._value = _ValueString(self._values, parent.typed.variable, binary)
            self._values += 1
            if self.report:
                self._events.append(
                    ValueBegins(self._value.index, self._value.variable, self._at + 1)
                )

    def _string(self, text: bytes, position: int) -> int:
        """Reads string content from `position`; returns where it stopped."""
        end = len(text)
        if self._escape:
            while position < end and self._escape:
                position = self._escape_char(text[position], position)
            return position
        # bytes.find is memchr: ten times what a pattern for either byte manages.
        quote, backslash = text.find(b'"', position), text.find(b"\\", position)
        stop = min(quote if quote >= 0 else end, backslash if backslash >= 0 else end)
        if stop > position:
            self._content(text[position:stop])
        if stop == end:
            return end
        if text[stop] == 0x22:
            self._quote_at = self._consumed + stop
            self._end_string()
        else:
            self._escape.append(0x5C)
        return stop + 1

    def _escape_char(self, char: int, position: int) -> int:
        self._escape.append(char)
        if self._role == _Role.SKIP and len(self._escape) == 2 and char in _SHORT_ESCAPES:
            self._escape.clear()  # only `\"` matters to the structure, and it ends here
            return position + 1
        unescaped = base64decoding.unescaped(self._escape)
        if unescaped is None:
            return position + 1
        if unescaped < 0:
            raise NotJson(
                f"The JSON body has an invalid escape {bytes(self._escape)!r} at byte "
                f"{self._consumed + position}; the engine would refuse it too."
            )
        self._escape.clear()
        if self._role == _Role.VALUE:
            assert self._value is not None
            self._decoded(self._value.escaped(unescaped))
        elif self._role != _Role.SKIP:
            self._keep(chr(unescaped).encode("utf-8", "surrogatepass"))
        return position + 1

    def _content(self, raw: bytes) -> None:
        if self._role == _Role.SKIP:
            return
        if self._role == _Role.VALUE:
            assert self._value is not None
            self._decoded(self._value.run(raw))
        else:
            self._keep(raw)

    def _decoded(self, data: bytes) -> None:
        assert self._value is not None
        self._decoded_by(self._value, data)

    def _decoded_by(self, value: _ValueString, data: bytes) -> None:
        if self.string_limit_chars and value.chars > self.string_limit_chars:
            raise InvalidValue(_too_long(value, self.string_limit_chars))
        if data and self.report:
            self._events.append(Decoded(data))

    def _keep(self, raw: bytes) -> None:
        room = SHORT_STRING_KEEP_BYTES - len(self._kept)
        if len(raw) > room:
            self._kept_whole = False
        self._kept += raw[: max(room, 0)]

    def _end_string(self) -> None:
        self._in_string = False
        role = self._role
        kept = jsontext.jackson_text(bytes(self._kept))
        frame = self._stack[-1] if self._stack else None
        if role == _Role.KEY:
            assert frame is not None
            frame.key, frame.key_whole = kept, self._kept_whole
            self._expect = _Expect.COLON
            return
        if role == _Role.VALUE:
            value = self._value
            assert value is not None
            assert frame is not None
            assert frame.typed is not None
            self._decoded(value.end())
            frame.typed.value = value
            self._value = None
            if self.report:
                self._events.append(ValueEnds(value.index, self._quote_at))
        elif role == _Role.TYPE:
            assert frame is not None
            assert frame.typed is not None
            frame.typed.type_name = kept if self._kept_whole else None
        elif role == _Role.FILENAME:
            assert frame is not None
            assert frame.info_of is not None
            frame.info_of.filename = kept
        self._value_done()


def _engine_type(type_name: str | None) -> str | None:
    """VariableValueDto.fromRestApiTypeName: only the first letter is lower-cased."""
    return type_name[0].lower() + type_name[1:] if type_name else None


# Jackson refuses numbers of more than 1000 digits (StreamReadConstraints).
_LITERAL_KEEP_BYTES = 1100


def _literal_text(literal: bytes) -> str | None:
    """The text the engine decodes as base64 for a Bytes value given as a number or a
    literal: Java's `String.valueOf` of what Jackson made of it (None for null)."""
    if literal == b"null":
        return None
    if literal in (b"true", b"false"):
        return literal.decode()
    try:
        if not any(c in literal for c in b".eE"):
            return str(int(literal))  # Integer, Long or BigInteger: canonical digits
        number = float(literal)
    except ValueError:
        return literal.decode("ascii", "replace")  # Jackson refuses it
    # A Double's toString always has a '.' or an 'E', so only an overflow decodes.
    return "Infinity" if number == float("inf") else "-" if number < 0 else "0.0"


def _container(frame: _Frame) -> str:
    return "object" if frame.is_object else "array"


def _named(typed: _Typed | _ValueString) -> str:
    return f"variable {typed.variable!r}" if typed.variable is not None else "the variable"


def _invalid_base64(typed: _Typed, type_name: str, error: str) -> str:
    how = (
        "strictly, as RFC 4648 base64 with nothing else in it (no line breaks)"
        if type_name == "File"
        else "as base64 with padding (white space between 4-character units is allowed)"
    )
    return (
        f"The {type_name} value of {_named(typed)} is not valid base64: it has {error}. "
        f"The engine decodes {type_name} values {how}."
    )


def _too_long(value: _ValueString, limit_chars: int) -> str:
    return (
        f"The value of {_named(value)} is longer than the engine's limit of {limit_chars:,} "
        "characters for a JSON string (about "
        f"{limit_chars // 4 * 3:,} bytes of file in base64). Upload large files as multipart "
        "to the variable's …/data endpoint instead, e.g. POST "
        "/engine-rest/process-instance/{id}/variables/{name}/data."
    )
