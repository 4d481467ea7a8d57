from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import base64decoding
from gateway.jsonvalues import (
    Decoded,
    InvalidValue,
    NotJson,
    Stored,
    TypedValueEnds,
    ValueBegins,
    ValueEnds,
    ValueScanner,
    parse_place,
    read_as_json,
)

VARIABLES = (parse_place("variables.*"),)


@dataclass(frozen=True)
class Seen:
    """What a scan reported: each stored value with the bytes decoded for it."""

    stored: list[tuple[Stored, bytes]]
    strict_file_error: str | None


def scan(
    body: bytes,
    places: tuple[tuple[str, ...], ...] = VARIABLES,
    cuts: list[int] | None = None,
    **options: Any,
) -> Seen:
    scanner = ValueScanner(places, **options)
    points = sorted({cut % (len(body) + 1) for cut in cuts or []})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    decoded: dict[int, bytearray] = {}
    current: bytearray | None = None
    stored = []
    events = [event for piece in pieces for event in scanner.feed(piece)]
    for event in [*events, *scanner.finish()]:
        if isinstance(event, ValueBegins):
            assert current is None
            current = decoded[event.index] = bytearray()
        elif isinstance(event, Decoded):
            assert current is not None
            assert event.data
            current += event.data
        elif isinstance(event, ValueEnds):
            assert current is not None
            current = None
        else:
            assert isinstance(event, TypedValueEnds)
            if event.stored is not None:
                stored.append((event.stored, bytes(decoded[event.stored.index])))
    return Seen(stored, scanner.strict_file_error)


def body(**maps: Any) -> bytes:
    return json.dumps(maps).encode()


def typed(type_name: str, content: bytes, **extra: Any) -> dict[str, Any]:
    return {"type": type_name, "value": base64.b64encode(content).decode(), **extra}


def test_file_and_bytes_values_are_found_with_their_names_and_decoded() -> None:
    seen = scan(
        body(
            variables={
                "doc": typed("File", b"%PDF-1.7", valueInfo={"filename": "a.pdf"}),
                "raw": typed("Bytes", b"\x00\x01"),
                "text": {"type": "String", "value": "QUJD"},
            }
        )
    )
    assert [(s.variable, s.type_name, s.filename, data) for s, data in seen.stored] == [
        ("doc", "File", "a.pdf", b"%PDF-1.7"),
        ("raw", "Bytes", None, b"\x00\x01"),
    ]


def test_a_value_before_its_type_is_decoded_without_being_held() -> None:
    content = bytes(range(256)) * 1000
    document = b'{"variables":{"doc":{"value":"' + base64.b64encode(content) + b'","type":"file"}}}'
    ((stored, data),) = scan(document).stored
    assert (stored.type_name, data, stored.exact) == ("File", content, True)


@pytest.mark.parametrize("spelling", ["File", "file", "Bytes", "bytes"])
def test_the_engines_spellings_of_the_binary_types_are_binary(spelling: str) -> None:
    assert len(scan(body(variables={"v": typed(spelling, b"x")})).stored) == 1


@pytest.mark.parametrize("spelling", ["FILE", "BYTES", "fILE", "String", "Json", ""])
def test_other_type_names_are_not_files(spelling: str) -> None:
    assert scan(body(variables={"v": typed(spelling, b"x")})).stored == []


def test_values_are_found_only_where_the_engine_reads_variables() -> None:
    document = body(
        variables={"a": typed("Bytes", b"1")},
        other={"b": typed("Bytes", b"2")},
        instructions=[
            {"variables": {"c": typed("Bytes", b"3")}},
            {"variables": {"d": typed("Bytes", b"4")}},
        ],
    )
    places = (parse_place("variables.*"), parse_place("instructions[].variables.*"))
    assert [s.variable for s, _ in scan(document, places).stored] == ["a", "c", "d"]


def test_the_body_itself_is_the_value_for_a_put_of_one_variable() -> None:
    seen = scan(body(**typed("Bytes", b"one")), (parse_place("."),), root_variable="doc")
    assert [(s.variable, data) for s, data in seen.stored] == [("doc", b"one")]


def test_the_last_of_repeated_keys_wins_as_in_jackson() -> None:
    document = b'{"variables":{"v":{"type":"String","value":"QUJD","value":"QUFB","type":"Bytes"}}}'
    assert [data for _, data in scan(document).stored] == [b"AAA"]


def test_keys_and_types_may_be_written_with_escapes() -> None:
    document = b'{"v\\u0061riables":{"v":{"\\u0074ype":"B\\u0079tes","value":"QU\\u004aD"}}}'
    assert [data for _, data in scan(document).stored] == [b"ABC"]


def test_overlong_utf8_is_read_as_jackson_reads_it() -> None:
    # C1 A5 is an overlong 'e', C0 AF an overlong '/': Jackson takes both.
    document = b'{"variables":{"v":{"typ\xc1\xa5":"Bytes","value":"\xc0\xaf\xc0\xaf\xc0\xafw"}}}'
    assert [data for _, data in scan(document).stored] == [base64.b64decode("///w")]


@pytest.mark.parametrize(
    "encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-8-sig", "utf-16"]
)
def test_utf16_and_utf32_bodies_are_read_as_jackson_detects_them(encoding: str) -> None:
    document = body(variables={"v": typed("File", b"content", valueInfo={"filename": "f"})})
    seen = scan(document.decode().encode(encoding), cuts=[1, 3, 7])
    assert [data for _, data in seen.stored] == [b"content"]


def test_a_bytes_value_given_as_a_number_or_true_is_decoded_from_its_text() -> None:
    seen = scan(
        b'{"variables":{"a":{"type":"Bytes","value":true},"b":{"type":"Bytes","value":12345678}}}'
    )
    assert [data for _, data in seen.stored] == [
        base64.b64decode("true"),
        base64.b64decode("12345678"),
    ]


def test_a_bytes_value_the_engine_cannot_decode_is_refused_naming_it() -> None:
    with pytest.raises(InvalidValue, match="Bytes value of variable 'v' is not valid base64"):
        scan(body(variables={"v": {"type": "Bytes", "value": "QUJ"}}))


def test_a_file_value_only_operaton_refuses_passes_and_is_explained() -> None:
    # Operaton's java.util.Base64 refuses the line break; Camunda 7 skips it.
    seen = scan(body(variables={"v": {"type": "File", "value": "QUJD\nQUJD"}}))
    assert [data for _, data in seen.stored] == [b"ABCABC"]
    assert seen.strict_file_error is not None
    assert "File value of variable 'v' is not valid base64" in seen.strict_file_error


def test_a_value_over_the_string_limit_is_refused_and_one_at_it_passes() -> None:
    at_limit = body(variables={"v": {"type": "Bytes", "value": "A" * 40}})
    assert len(scan(at_limit, string_limit_chars=40).stored) == 1
    over = body(variables={"v": {"type": "Bytes", "value": "A" * 44}})
    with pytest.raises(InvalidValue, match="limit of 40 characters"):
        scan(over, string_limit_chars=40)


def test_the_limit_counts_characters_after_unescaping_as_jackson_does() -> None:
    document = b'{"variables":{"v":{"type":"Bytes","value":"' + b"\\u0041" * 8 + b'"}}}'
    assert len(scan(document, string_limit_chars=8).stored) == 1


@pytest.mark.parametrize(
    "document",
    [b'{"variables":{"v":1,}}', b"{'a':1}", b'{"a" 1}', b'{"a":[1,]}', b'{"a":"\\x"}', b"[}"],
)
def test_json_the_engine_cannot_read_is_refused(document: bytes) -> None:
    with pytest.raises(NotJson):
        scan(document)


def test_what_follows_the_root_value_is_not_read() -> None:
    assert scan(body(variables={}) + b" {]").stored == []


@pytest.mark.parametrize(
    ("content_type", "read"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-16", True),
        (None, False),
        ("text/plain", False),
        ("application/vnd.api+json", False),
        ("application/json, text/plain", False),
    ],
)
def test_bodies_are_read_as_json_when_the_engine_reads_them_so(
    content_type: str | None, read: bool
) -> None:
    assert read_as_json(content_type) is read


# -- properties ---------------------------------------------------------------------------

BASE64 = st.binary(max_size=300).map(lambda data: base64.b64encode(data).decode())
ODD_BASE64 = st.text(alphabet='QUJDAB+/=\n \\"é-_@', max_size=40)
TYPED = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["File", "Bytes", "file", "String"]),
        "value": st.one_of(BASE64, ODD_BASE64),
    },
    optional={"valueInfo": st.fixed_dictionaries({"filename": st.text(max_size=10)})},
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
OTHER = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
DOCUMENTS = st.fixed_dictionaries(
    {"variables": st.dictionaries(st.text(max_size=8), TYPED, max_size=4)},
    optional={
        "other": OTHER,
        "instructions": st.lists(
            st.fixed_dictionaries(
                {"variables": st.dictionaries(st.text(max_size=4), TYPED, max_size=2)}
            ),
            max_size=2,
        ),
    },
)
PLACES = (parse_place("variables.*"), parse_place("instructions[].variables.*"))


def _expected(document: dict[str, Any]) -> list[tuple[str, str, bytes | None]]:
    """What json.loads reads of the body, decoded by the engine's decoders char by char."""
    found = []
    maps = []
    for key, member in document.items():  # in the body's order
        if key == "variables":
            maps.append(member)
        elif key == "instructions":
            maps += [item["variables"] for item in member]
    for variables in maps:
        for name, value in variables.items():
            engine_type = value["type"][0].lower() + value["type"][1:]
            if engine_type not in ("file", "bytes"):
                continue
            chars = [ord(c) if ord(c) < 0x80 else 0x80 for c in value["value"]]
            if engine_type == "bytes":
                jackson = base64decoding.JacksonDecoding()
                data = b"".join(jackson.char(c) for c in chars) + jackson.end()
                found.append((name, "Bytes", None if jackson.error else data))
            else:
                codec = base64decoding.CodecDecoding()
                data = b"".join(codec.char(c) for c in chars) + codec.end()
                found.append((name, "File", data))
    return found


def _seen(raw: bytes, cuts: list[int]) -> list[tuple[str, str, bytes | None]] | str:
    try:
        seen = scan(raw, PLACES, cuts)
    except InvalidValue as invalid:
        return "invalid" if "Bytes value of variable" in str(invalid) else str(invalid)
    return [(s.variable or "", s.type_name, data if s.exact else None) for s, data in seen.stored]


@settings(max_examples=400)
@given(
    document=DOCUMENTS,
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_any_body_gives_what_json_loads_reads_decoded_as_the_engine_decodes(
    document: dict[str, Any], ascii_only: bool, indent: int | None, cuts: list[int]
) -> None:
    raw = json.dumps(document, ensure_ascii=ascii_only, indent=indent).encode()
    expected = _expected(json.loads(raw))
    seen = _seen(raw, cuts)
    if any(data is None for _, kind, data in expected if kind == "Bytes"):
        assert seen == "invalid"
        return
    assert isinstance(seen, list)
    assert len(seen) == len(expected)
    for (name, kind, data), (want_name, want_kind, want) in zip(seen, expected, strict=True):
        assert (name, kind) == (want_name, want_kind)
        assert data is None or data == want  # None: read two ways before its type came


@settings(max_examples=300)
@given(raw=st.binary(max_size=400), cuts=st.lists(st.integers(min_value=0), max_size=6))
def test_any_bytes_give_the_same_result_however_they_are_cut(raw: bytes, cuts: list[int]) -> None:
    def outcome(points: list[int]) -> object:
        try:
            return scan(raw, PLACES, points)
        except (NotJson, InvalidValue) as error:
            return type(error)

    assert outcome(cuts) == outcome([])


@settings(max_examples=300)
@given(document=OTHER, ascii_only=st.booleans())
def test_json_that_json_loads_reads_is_never_refused_as_not_json(
    document: Any, ascii_only: bool
) -> None:
    scan(json.dumps({"other": document}, ensure_ascii=ascii_only).encode(), PLACES)


@given(
    st.text(max_size=60),
    st.sampled_from(["utf-8", "utf-16-le", "utf-32-be"]),
    st.lists(st.integers(min_value=1, max_value=40), max_size=8),
)
def test_a_values_place_in_the_text_is_exactly_its_string(
    value: str, encoding: str, cuts: list[int]
) -> None:
    """offload.py replaces a value by cutting the text at these places."""
    document = {"variables": {"a": {"type": "File", "value": value}, "b": {"value": "x"}}}
    raw = json.dumps(document).encode(encoding)
    scanner = ValueScanner((parse_place("variables.*"),))
    text, starts, ends = b"", {}, {}
    position = 0
    for cut in [*cuts, len(raw)]:
        piece, position = raw[position : position + cut], position + cut
        events = scanner.feed(piece) if piece else []
        text += scanner.text
        for event in events:
            if isinstance(event, ValueBegins):
                starts[event.index] = event.start
            elif isinstance(event, ValueEnds):
                ends[event.index] = event.end
    scanner.finish()
    text += scanner.text
    written = [json.dumps(value)[1:-1].encode(), b"x"]
    assert [text[starts[index] : ends[index]] for index in sorted(starts)] == written
