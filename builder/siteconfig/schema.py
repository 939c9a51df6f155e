"""The JSON Schema of scalemesh.json (`scalemesh.schema.json`, beside this module): what the API
publishes at `/schema/scalemesh.json` for editors. The reader (`scalemesh`) is the rule the
build applies; a test holds the two to the same verdicts."""

from __future__ import annotations

from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("scalemesh.schema.json")


def schema_bytes() -> bytes:
    return SCHEMA_PATH.read_bytes()
