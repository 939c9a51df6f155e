"""The position-keeping JSON reader: the same values as `json`, the line of every key and item,
and errors that name their line without quoting the text."""

from __future__ import annotations

import json

import pytest

from builder.siteconfig.jsonlines import MAX_DEPTH, JsonSyntaxError, loads

DOCUMENTS = [
    "{}",
    "[]",
    '  {"a": 1, "b": [true, false, null], "c": {"d": -1.5e3, "e": ""}}  ',
    '"just a string"',
    "0",
    "-0.25",
    "12E+2",
    '{"escapes": "\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"}',
    '[[[], {}], [{"x": [1]}]]',
    '{"unicode ключ": "значение"}',
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_values_are_what_json_reads(text: str) -> None:
    assert loads(text).value == json.loads(text)


def test_every_key_and_item_has_its_line() -> None:
    text = '{\n  "a": 1,\n  "list": [\n    "x",\n\n    {"deep":\n      true}\n  ],\n  "z": null\n}'
    located = loads(text)
    value = located.value

    assert located.line == 1
    assert located.line_of(value, "a") == 2
    assert located.line_of(value, "list") == 3
    assert located.line_of(value, "z") == 9
    assert located.line_of(value["list"], 0) == 4
    assert located.line_of(value["list"], 1) == 6
    assert located.line_of(value["list"][1], "deep") == 6


def test_lines_of_what_the_document_does_not_hold_are_unknown() -> None:
    located = loads('{"a": [1]}')

    assert located.line_of(located.value, "missing") is None
    assert located.line_of(located.value["a"], 5) is None
    assert located.line_of(located.value["a"], "a") is None
    assert located.line_of({}, "a") is None


ERRORS = [
    ("", 1, "the file ends where a value was expected"),
    ("{\n", 2, "expected a key in double quotes"),
    ('{"a" 1}', 1, "expected ':' after a key"),
    ('{"a": 1\n\n"b": 2}', 3, "expected ',' or '}' after a value in an object"),
    ("[1\n2]", 2, "expected ',' or ']' after a value in an array"),
    ("[1,]", 1, "expected a value (a string, number, object, array, true, false or null)"),
    ("{'a': 1}", 1, "expected a key in double quotes"),
    ('{"a": 1, "a": 2}', 1, "the key 'a' appears twice in one object"),
    ('\n\n"open', 3, "a string is not closed, or holds a control character"),
    ('"tab\there"', 1, "a string is not closed, or holds a control character"),
    ('"\\q"', 1, "invalid \\escape"),
    ("NaN", 1, "expected a value (a string, number, object, array, true, false or null)"),
    ("01", 1, "unexpected text after the JSON value"),
    ("{} {}", 1, "unexpected text after the JSON value"),
    ("9" * 5000, 1, "a number is too long"),
]


@pytest.mark.parametrize(("text", "line", "message"), ERRORS)
def test_errors_name_their_line(text: str, line: int, message: str) -> None:
    with pytest.raises(JsonSyntaxError) as caught:
        loads(text)

    assert (caught.value.line, caught.value.message) == (line, message)


def test_a_long_duplicate_key_is_cut_short_in_the_message() -> None:
    key = "k" * 100
    with pytest.raises(JsonSyntaxError) as caught:
        loads(f'{{"{key}": 1, "{key}": 2}}')

    assert caught.value.message == f"the key '{'k' * 40}...' appears twice in one object"


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_deep_nesting_is_refused_without_exhausting_the_stack(opening: str) -> None:
    text = opening * 1_000_000

    with pytest.raises(JsonSyntaxError) as caught:
        loads(text)

    assert caught.value.message == f"objects and arrays are nested deeper than {MAX_DEPTH} levels"


def test_nesting_up_to_the_limit_is_read() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH

    assert loads(text).value == json.loads(text)
