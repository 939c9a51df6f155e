"""The generated secret key: read it from the data directory, or write a new one on first start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from app.settings_parts import SettingsError

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - the name of the file, not a secret


def load_or_create_secret_key(data_dir: Path) -> str:
    """Return the key stored in the data directory, writing a new random one on first start."""
    path = data_dir / SECRET_KEY_FILE
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        pass
    else:
        if len(key) < 32:
            raise SettingsError(
                "SCALEMESH_SECRET_KEY",
                f"the generated key in {path} is damaged; delete the file to make a new one",
            )
        return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must not both write; the loser reads the winner's.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_secret_key(data_dir)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
