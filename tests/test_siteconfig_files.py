"""Which config file a build reads, and hostile ones: symlinks out of the repository, huge
files, bad encodings, things that are not files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.siteconfig import files
from builder.siteconfig.nodes import ConfigError
from tests.support.siteconfig import read, refusal, write

# --- where the file is looked for ---------------------------------------------------------------


def test_no_file_is_an_empty_config(tmp_path: Path) -> None:
    config = read(tmp_path, {"index.html": "<p>hi"})

    assert config.source is None
    assert config.rules is None
    assert config.warnings == ()


def test_the_root_directorys_file_wins_over_the_repositorys(tmp_path: Path) -> None:
    layout = {
        "scalemesh.json": {"buildCommand": "root build"},
        "apps/web/netlify.toml": '[build]\ncommand = "web build"\n',
    }

    config = read(tmp_path, layout, root_directory="apps/web/")

    assert config.source == "apps/web/netlify.toml"
    assert config.build_command == "web build"


def test_the_repository_root_is_read_when_the_root_directory_has_none(tmp_path: Path) -> None:
    layout = {"scalemesh.json": {"buildCommand": "root build"}, "apps/web/index.html": "x"}

    config = read(tmp_path, layout, root_directory="apps/web")

    assert config.source == "scalemesh.json"
    assert config.build_command == "root build"


def test_without_a_project_root_directory_only_the_repository_root_is_read(tmp_path: Path) -> None:
    layout = {
        "scalemesh.json": {"rootDirectory": "apps/web"},
        "apps/web/scalemesh.json": {"buildCommand": "not read"},
    }

    config = read(tmp_path, layout)

    assert config.source == "scalemesh.json"
    assert config.root_directory == "apps/web"
    assert config.build_command is None


@pytest.mark.parametrize("root_directory", ["../elsewhere", "/apps/web", ".", "..", "./"])
def test_a_root_directory_outside_the_repository_is_not_looked_in(
    tmp_path: Path, root_directory: str
) -> None:
    write(tmp_path, {"elsewhere/scalemesh.json": {"buildCommand": "outside"}})

    config = read(tmp_path, {"scalemesh.json": {}}, root_directory=root_directory)

    assert config.source == "scalemesh.json"
    assert config.build_command is None


def test_scalemesh_json_is_read_before_the_others_which_are_named(tmp_path: Path) -> None:
    layout = {
        "apps/web/scalemesh.json": {},
        "apps/web/vercel.json": {"buildCommand": "x"},
        "apps/web/netlify.toml": "",
    }

    config = read(tmp_path, layout, root_directory="apps/web")

    assert config.source == "apps/web/scalemesh.json"
    assert config.warnings == (
        "apps/web/vercel.json is not read: apps/web/scalemesh.json is",
        "apps/web/netlify.toml is not read: apps/web/scalemesh.json is",
    )


def test_vercel_json_is_read_before_netlify_toml(tmp_path: Path) -> None:
    config = read(tmp_path, {"vercel.json": {}, "netlify.toml": ""})

    assert config.source == "vercel.json"
    assert config.warnings == ("netlify.toml is not read: vercel.json is",)


def test_errors_name_the_file_by_its_path_in_the_repository(tmp_path: Path) -> None:
    layout = {"apps/web/scalemesh.json": '{\n  "cleanUrls": 1\n}'}

    message = refusal(tmp_path, layout, root_directory="apps/web")

    assert message == "apps/web/scalemesh.json:2: cleanUrls must be true or false"


# --- hostile files ------------------------------------------------------------------------------


def test_a_symlink_out_of_the_repository_is_refused_unread(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"index.html": "x"})
    (repo / "scalemesh.json").symlink_to("/etc/passwd")

    message = refusal(tmp_path, {})

    assert message == (
        "scalemesh.json: is a symlink to outside the repository; "
        "only the repository's own files are read"
    )
    assert "root:" not in message


def test_a_symlinked_directory_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"scalemesh.json": {"buildCommand": "evil"}})
    repo = write(tmp_path / "repo", {})
    (repo / "apps").symlink_to(outside)

    message = refusal(tmp_path, {}, root_directory="apps")

    assert message.startswith("apps/scalemesh.json: is a symlink to outside the repository")


def test_a_symlink_inside_the_repository_is_followed(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"config/site.json": {"buildCommand": "linked"}})
    (repo / "scalemesh.json").symlink_to("config/site.json")

    config = read(tmp_path, {})

    assert config.build_command == "linked"


def test_a_huge_file_is_refused_after_a_megabyte(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {})
    with (repo / "scalemesh.json").open("wb") as stream:
        stream.truncate(50 << 20)

    assert refusal(tmp_path, {}) == "scalemesh.json: is larger than 1 MB"


def test_invalid_utf8_is_refused_naming_its_line(tmp_path: Path) -> None:
    text = b'{\n  "buildCommand": "caf\xe9"\n}'

    assert refusal(tmp_path, {"scalemesh.json": text}) == (
        "scalemesh.json:2: is not UTF-8 text (byte 24)"
    )


def test_a_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    config = read(tmp_path, {"vercel.json": b'\xef\xbb\xbf{"cleanUrls": true}'})

    assert config.clean_urls is True


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    text = '{"env": ' + "[" * 100_000 + "]" * 100_000 + "}"

    assert refusal(tmp_path, {"scalemesh.json": text}) == (
        "scalemesh.json:1: is not valid JSON: objects and arrays are nested deeper than 64 levels"
    )


def test_deeply_nested_toml_is_refused_cleanly(tmp_path: Path) -> None:
    text = "a = " + "[" * 100_000 + "]" * 100_000 + "\n"

    assert refusal(tmp_path, {"netlify.toml": text}) == (
        "netlify.toml: is not valid TOML: it is nested too deeply"
    )


def test_what_is_not_a_regular_file_is_not_read(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"scalemesh.json/inside": "x"})
    os.mkfifo(repo / "vercel.json")  # opening it for reading would block

    config = read(tmp_path, {})

    assert config.source is None


def test_a_file_that_cannot_be_opened_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write(tmp_path / "repo", {"scalemesh.json": "{}"})

    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ConfigError) as caught:
        files.read_text(repo.resolve(), "scalemesh.json")

    assert str(caught.value) == "scalemesh.json: cannot be read (Permission denied)"


def test_reading_a_file_that_is_not_there_gives_nothing(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {}).resolve()

    assert files.read_text(repo, "scalemesh.json") is None
    assert not files.exists(repo, "scalemesh.json")
