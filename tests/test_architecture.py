"""The layout's rules, checked on the tree: the doc's import map, module length, test imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import import_map

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400
CHECKED = ("app", "builder", "proxy", "tests", "bench")


def python_files() -> list[Path]:
    return sorted(
        path
        for folder in CHECKED
        for path in (ROOT / folder).rglob("*.py")
        if "piccolo_migrations" not in path.parts
    )


def test_the_docs_import_map_is_the_codes() -> None:
    doc = import_map.DOC.read_text()
    expected = import_map.render(import_map.edges())
    assert import_map.written(doc) == expected, (
        "docs/architecture.md's import map is out of date: "
        "run `python -m tests.support.import_map --write`"
    )


def test_the_import_map_can_be_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "architecture.md"
    doc.write_text(f"before\n{import_map.START}\nstale\n{import_map.END}\nafter\n")
    monkeypatch.setattr(import_map, "DOC", doc)

    assert import_map.main(["--write"]) == 0

    text = doc.read_text()
    assert text.startswith("before\n")
    assert text.endswith("\nafter\n")
    assert import_map.written(text) == import_map.render(import_map.edges())


def test_no_module_is_longer_than_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in python_files()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_test_modules_import_helpers_from_support_not_from_each_other() -> None:
    crossing = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.test_"):
                crossing.append(f"{path.relative_to(ROOT)} imports {node.module}")
    assert crossing == []
