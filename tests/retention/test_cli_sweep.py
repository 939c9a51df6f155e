"""`scalemesh storage sweep`: a dry run names what would go and deletes nothing; a real run
deletes it; `--all` goes on to the end, and a run that stops early says where. A deleted
project's build caches go too, a live one's stay."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from app.cli import main
from app.logs.archive import archive_key
from app.storage.local import LocalStorage
from builder.spec import output_prefix


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    monkeypatch.setenv("SCALEMESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SCALEMESH_STORAGE_URL", f"file://{tmp_path / 'storage'}")
    assert main(["migrate"]) == 0
    with sqlite3.connect(tmp_path / "data" / "scalemesh.sqlite3") as db:  # project 7 lives
        db.execute("INSERT INTO scalemesh_user (id, email, password_hash) VALUES (1, 'a@x', 'x')")
        db.execute(
            "INSERT INTO scalemesh_project (id, slug, name, owner, git_url) "
            "VALUES (7, 'web', 'web', 1, 'x')"
        )
    store = LocalStorage(tmp_path / "storage")
    (tmp_path / "storage").mkdir(exist_ok=True)
    for _ in range(3):
        deployment_id = str(uuid.uuid4())
        (tmp_path / "storage" / output_prefix(7, deployment_id)).mkdir(parents=True)
        (tmp_path / "storage" / output_prefix(7, deployment_id) / "index.html").write_text("x")
        (tmp_path / "storage" / "__logs").mkdir(exist_ok=True)
        (tmp_path / "storage" / archive_key(deployment_id)).write_text("{}")
    (tmp_path / "storage" / "__cache" / "7").mkdir(parents=True)
    (tmp_path / "storage" / "__cache" / "7" / "main.tar.zst").write_bytes(b"z")
    (tmp_path / "storage" / "__cache" / "8").mkdir()  # project 8 was deleted
    (tmp_path / "storage" / "__cache" / "8" / "main.tar.zst").write_bytes(b"z")
    return store


def test_a_dry_run_deletes_nothing_then_a_run_deletes_the_orphans(
    storage: LocalStorage, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["storage", "sweep", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "would delete 7 objects of 8 examined" in dry
    assert dry.count("would delete __outputs/7/") == 3
    assert "would delete __cache/8/\n" in dry
    assert "__cache/7/" not in dry

    assert main(["storage", "sweep", "--batch", "2"]) == 0
    stopped = capsys.readouterr().out
    assert "deleted 2 objects" in stopped
    assert "run again (or with --all) to go on" in stopped

    assert main(["storage", "sweep", "--all", "--batch", "2"]) == 0
    assert "deleted 5 objects" in capsys.readouterr().out
    import asyncio

    assert asyncio.run(storage.list("")) == ["__cache/7/main.tar.zst"]
