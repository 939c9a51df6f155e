"""The published JSON Schema and the builder's reader give the same verdict on every document
of a table (valid ones and each kind of mistake), so the schema editors check against is the
rule the build applies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from builder.siteconfig import scalemesh
from builder.siteconfig.nodes import ConfigError
from builder.siteconfig.schema import SCHEMA_PATH, schema_bytes
from tests.support.siteconfig import FULL

VALID: list[Any] = [
    {},
    FULL,
    {"$schema": "./node_modules/x.json", "buildCommand": None, "rootDirectory": None},
    {"framework": "docusaurus", "nodeVersion": "lts/*", "watchPaths": []},
    {"cache": [".cache/images", "a..b/c", "..x", "./tmp"]},
    {"redirects": [{"source": "/a", "destination": "/b", "statusCode": 301}]},
    {"redirects": [{"source": "/a", "destination": "/b", "permanent": True, "has": []}]},
    {
        "rewrites": [
            {
                "source": "/a",
                "destination": "/b",
                "missing": [{"type": "query", "key": "q", "value": ""}],
            }
        ]
    },
    {"headers": [{"source": "/a", "headers": [{"key": "Cache-Control", "value": ""}]}]},
    {"env": {"branches": {"a/b": {"_X1": ""}}}},
    {"env": {"production": {"CIX": "ok", "PATHS": "ok", "AWSX": "ok"}}},
    {"previews": {"enabled": False}},
    {"previews": {"branches": {"exclude": ["dependabot/*"]}}},
]

INVALID: list[Any] = [
    [],
    "text",
    {"buildComand": "x"},
    {"buildCommand": ""},
    {"buildCommand": 1},
    {"installCommand": "a\u0000b"},
    {"ignoreCommand": "x" * 4097},
    {"outputDirectory": "/abs"},
    {"rootDirectory": ""},
    {"framework": "Vite"},
    {"framework": "vite\n"},
    {"framework": "-vite"},
    {"framework": "a" * 65},
    {"nodeVersion": "1" * 65},
    {"$schema": ""},
    {"watchPaths": ["/x"]},
    {"watchPaths": [None]},
    {"watchPaths": ["a"] * 257},
    {"cache": "x"},
    {"cache": ["/abs"]},
    {"cache": [".."]},
    {"cache": ["a/../../b"]},
    {"cache": ["a/.."]},
    {"cache": [""]},
    {"cache": ["a"] * 33},
    {"cleanUrls": None},
    {"trailingSlash": "true"},
    {"redirects": [{"source": "a", "destination": "/b"}]},
    {"redirects": [{"source": "/a"}]},
    {"redirects": [{"source": "/a", "destination": ""}]},
    {"redirects": [{"source": "/a", "destination": "/b", "statusCode": 302, "permanent": False}]},
    {"redirects": [{"source": "/a", "destination": "/b", "statusCode": 304}]},
    {"redirects": [{"source": "/a", "destination": "/b", "basePath": False}]},
    {"redirects": [{"source": "/a", "destination": "/b"}] * 2049},
    {"rewrites": [{"source": "/a", "destination": "/b", "statusCode": 301}]},
    {
        "rewrites": [
            {
                "source": "/a",
                "destination": "/b",
                "has": [{"type": "host", "key": "k", "value": "v"}],
            }
        ]
    },
    {"rewrites": [{"source": "/a", "destination": "/b", "has": [{"type": "host", "value": ""}]}]},
    {"rewrites": [{"source": "/a", "destination": "/b", "has": [{"type": "cookie"}]}]},
    {
        "rewrites": [
            {"source": "/a", "destination": "/b", "has": [{"type": "cookie", "key": "a", "x": 1}]}
        ]
    },
    {
        "rewrites": [
            {"source": "/a", "destination": "/b", "has": [{"type": "header", "key": "k"}] * 17}
        ]
    },
    {"headers": [{"source": "/a", "headers": []}]},
    {"headers": [{"source": "/a", "headers": [{"key": "A B", "value": "x"}]}]},
    {"headers": [{"source": "/a", "headers": [{"key": "A\n", "value": "x"}]}]},
    {"headers": [{"source": "/a", "headers": [{"key": "A", "value": "x\n"}]}]},
    {"headers": [{"source": "/a", "headers": [{"key": "A", "value": "x\u0000"}]}]},
    {"env": {"production": {"1X": "x"}}},
    {"env": {"production": {"X\n": "x"}}},
    {"env": {"production": {"SCALEMESH_TOKEN": "x"}}},
    {"env": {"production": {"HOME": "x"}}},
    {"env": {"production": {"X": "x" * 65537}}},
    {"env": {"production": {"X": "a\u0000"}}},
    {"env": {"branches": {"": {}}}},
    {"env": {"branches": {"b" * 256: {}}}},
    {"env": {"all": {}}},
    {"previews": {"enabled": None}},
    {"previews": {"branches": {"include": "main"}}},
    {"previews": {"branches": {"include": ["x" * 256]}}},
]


def _reader_accepts(document: Any) -> bool:
    try:
        scalemesh.read(json.dumps(document), "scalemesh.json", target="preview", branch="main")
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("document", VALID)
def test_valid_documents_pass_both(document: Any) -> None:
    jsonschema.Draft202012Validator(json.loads(schema_bytes())).validate(document)
    assert _reader_accepts(document)


@pytest.mark.parametrize("document", INVALID)
def test_invalid_documents_fail_both(document: Any) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(schema_bytes()))
    assert not validator.is_valid(document)
    assert not _reader_accepts(document)


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(schema_bytes())

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(scalemesh.FIELDS)


def test_the_schema_ships_with_the_builder_package() -> None:
    assert Path(SCHEMA_PATH).parent == Path(scalemesh.__file__).parent
    assert schema_bytes() == Path(SCHEMA_PATH).read_bytes()
