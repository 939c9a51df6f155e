"""LocalStorage on its own: files under the root, temp files, directories and OS errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.storage import StorageError
from app.storage.local import LocalStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- local specifics ------------------------------------------------------------------------


async def test_local_check_fails_when_the_root_cannot_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")

    with pytest.raises(StorageError, match="is not writable"):
        await LocalStorage(tmp_path / "file" / "storage").check()


async def test_local_files_land_under_the_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    await storage.put("a/b/c.txt", b"hello")

    assert (tmp_path / "root" / "a" / "b" / "c.txt").read_bytes() == b"hello"
    assert sorted(p.name for p in (tmp_path / "root" / "a" / "b").iterdir()) == ["c.txt"]


async def test_local_ignores_a_crashed_puts_temp_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("site/index.html", b".")
    (tmp_path / "site" / ".~scalemesh-0123456789abcdef").write_bytes(b"half")

    assert await storage.list("") == ["site/index.html"]
    assert await storage.delete_prefix("site/") == 1
    # The directory stays for the stray file; nothing is listed in it.
    assert await storage.list("") == []
    assert (tmp_path / "site").is_dir()


async def test_local_delete_prefix_removes_emptied_directories(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "s")
    await storage.put("d/1/x/y", b".")
    await storage.put("d/2", b".")

    assert await storage.delete_prefix("d/1/") == 1

    assert not (tmp_path / "s" / "d" / "1").exists()
    assert (tmp_path / "s" / "d" / "2").is_file()


async def test_local_file_system_errors_become_storage_errors(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    too_long = "x" * (os.pathconf(tmp_path, "PC_NAME_MAX") + 1)

    with pytest.raises(StorageError, match="cannot write"):
        await storage.put(too_long, b".")
    with pytest.raises(StorageError, match="cannot read"):
        await storage.get(too_long)
    with pytest.raises(StorageError, match="cannot look up"):
        await storage.exists(too_long)
    # The failed put cleaned up after itself.
    assert os.listdir(tmp_path) == []


async def test_local_a_key_cannot_also_be_a_directory(tmp_path: Path) -> None:
    # S3 allows both "a" and "a/b"; a file system cannot, so don't rely on it.
    storage = LocalStorage(tmp_path)
    await storage.put("a/b", b".")
    await storage.put("f", b".")

    with pytest.raises(StorageError, match="cannot write a"):
        await storage.put("a", b".")
    with pytest.raises(StorageError, match="cannot write f/g"):
        await storage.put("f/g", b".")
    # "a/b/" names a file's children: there are none, and the file stays.
    assert await storage.delete_prefix("a/b/") == 0
    assert await storage.list("") == ["a/b", "f"]
