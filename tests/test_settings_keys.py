"""Key rings: `SCALEMESH_SECRET_KEY` and `SCALEMESH_PREVIEW_KEY`, required on PostgreSQL; on
SQLite, the secret key generated once into the data directory."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.secret_key import SECRET_KEY_FILE
from app.settings import Settings
from app.settings_parsing import key_id_of
from app.settings_parts import KeyRing, Secret, SettingsError

POSTGRES = "postgresql://scalemesh:pw@db:5432/scalemesh"
NEW, OLD = "a" * 64, "b" * 64


@pytest.mark.parametrize("value", [None, "", "   "])
def test_on_postgres_no_key_is_generated_and_serving_is_refused(
    tmp_path: Path, value: str | None
) -> None:
    """An empty key counts as none: each replica writing its own key file would half-work."""
    environ = {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_DATABASE_URL": POSTGRES}
    if value is not None:
        environ["SCALEMESH_SECRET_KEY"] = environ["SCALEMESH_PREVIEW_KEY"] = value

    settings = Settings.from_env(environ)

    assert settings.secret_keys is None
    assert settings.preview_keys is None
    assert not (tmp_path / SECRET_KEY_FILE).exists()
    for part, variable in (("api", "SCALEMESH_SECRET_KEY"), ("proxy", "SCALEMESH_PREVIEW_KEY")):
        with pytest.raises(SettingsError, match=rf"^{variable}: must be set .*PostgreSQL"):
            settings.check_part(part)
    with pytest.raises(SettingsError, match="SCALEMESH_SECRET_KEY"):
        settings.secret_key  # noqa: B018 - the property is what refuses


def test_the_proxy_needs_only_the_preview_key_on_postgres() -> None:
    settings = Settings.from_env(
        {"SCALEMESH_DATABASE_URL": POSTGRES, "SCALEMESH_PREVIEW_KEY": f"p1:{NEW}"}
    )

    settings.check_part("proxy")
    assert settings.secret_keys is None
    with pytest.raises(SettingsError, match="SCALEMESH_SECRET_KEY"):
        settings.check_part("api")


def test_a_key_ring_signs_with_its_first_key_and_keeps_the_others() -> None:
    settings = Settings.from_env(
        {
            "SCALEMESH_DATABASE_URL": POSTGRES,
            "SCALEMESH_SECRET_KEY": f" k2:{NEW} , k1:{OLD} ",
            "SCALEMESH_PREVIEW_KEY": f"p1:{NEW}",
        }
    )

    settings.check_part("api")
    keys = settings.require_secret_keys()
    assert [key.id for key in keys.keys] == ["k2", "k1"]
    assert settings.secret_key == Secret(NEW)
    assert keys.find("k1") is not None
    assert keys.find("k3") is None
    assert keys.macs(b"m") == [keys.primary.mac(b"m"), keys.keys[1].mac(b"m")]
    assert NEW not in repr(settings) + repr(keys)
    assert repr(keys) == "KeyRing(ids=['k2', 'k1'])"


def test_a_bare_key_gets_an_id_from_its_hash_and_may_rotate_too(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_SECRET_KEY": f"{NEW},{OLD}"}
    )

    keys = settings.require_secret_keys()
    assert [key.id for key in keys.keys] == [key_id_of(NEW), key_id_of(OLD)]
    assert len(key_id_of(NEW)) == 8
    assert NEW[:8] not in key_id_of(NEW)
    # SQLite without SCALEMESH_PREVIEW_KEY: previews use the secret keys (each use derives its own).
    assert settings.preview_keys == keys


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("k1:short", "at least 32 characters"),
        (f"k1:{NEW},", "at least 32 characters"),
        (f"k1:{NEW},k1:{OLD}", "'k1' is listed twice"),
        (f"{NEW},{NEW}", "listed twice"),
    ],
)
@pytest.mark.parametrize("variable", ["SCALEMESH_SECRET_KEY", "SCALEMESH_PREVIEW_KEY"])
def test_bad_key_rings_are_refused(tmp_path: Path, variable: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}: .*{problem}"):
        Settings.from_env({"SCALEMESH_DATA_DIR": str(tmp_path), variable: value})


def test_an_empty_key_ring_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        KeyRing(())


def test_secret_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    environ = {"SCALEMESH_DATA_DIR": str(tmp_path / "data")}

    first = Settings.from_env(environ)
    second = Settings.from_env(environ)

    path = tmp_path / "data" / SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.secret_key.reveal() == path.read_text().strip()
    assert second.secret_key == first.secret_key
    assert len(first.secret_key.reveal()) >= 32


def test_a_damaged_generated_key_is_an_error(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE).write_text("short")

    with pytest.raises(SettingsError, match=r"SCALEMESH_SECRET_KEY.*delete the file"):
        Settings.from_env({"SCALEMESH_DATA_DIR": str(tmp_path)})


def test_a_key_written_by_another_process_at_the_same_moment_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / SECRET_KEY_FILE
    real_read_text = Path.read_text
    first = True

    def racing_read_text(self: Path, *args: object, **kwargs: object) -> str:
        # The first look finds no file; meanwhile another process writes one.
        nonlocal first
        if self == path and first:
            first = False
            path.write_text("w" * 64)
            raise FileNotFoundError(path)
        return real_read_text(self)

    monkeypatch.setattr(Path, "read_text", racing_read_text)

    settings = Settings.from_env({"SCALEMESH_DATA_DIR": str(tmp_path)})

    assert settings.secret_key.reveal() == "w" * 64
