"""The client's config file: the API's URL and a session token, readable by its owner only."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.client import ClientError

DEFAULT_API = "http://localhost:8000"
CONFIG_VARIABLE = "SCALEMESH_CONFIG"
DEFAULT_CONFIG = Path(".config", "scalemesh", "config.json")
"""Under the home directory, unless `SCALEMESH_CONFIG` names another file."""


@dataclass(frozen=True, slots=True)
class Config:
    api: str
    token: str


def config_path(environ: Mapping[str, str]) -> Path:
    chosen = environ.get(CONFIG_VARIABLE, "")
    return Path(chosen).expanduser() if chosen else Path.home() / DEFAULT_CONFIG


def load_config(path: Path) -> Config:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClientError("not logged in; run scalemesh login") from None
    except ValueError:
        raise ClientError(f"{path} is not valid JSON; run scalemesh login") from None
    api, token = (data.get(key) for key in ("api", "token")) if isinstance(data, dict) else ("", "")
    if not isinstance(api, str) or not isinstance(token, str) or not token:
        raise ClientError(f"{path} holds no API and token; run scalemesh login")
    return Config(check_api_url(api), token)


def save_config(path: Path, config: Config) -> None:
    """Write the file whole or not at all, readable by its owner only from its first byte."""
    directory = path.parent
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        pass  # an existing directory may be the user's own (a home dir): leave its mode alone
    else:
        directory.chmod(0o700)
    # mkstemp creates the file with mode 0600, so the token is never readable by others.
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump({"api": config.api, "token": config.token}, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        os.unlink(temporary)
        raise ClientError(f"cannot save the session in {path} ({exc.strerror or exc})") from None


def check_api_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 address
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ClientError(f"{raw!r} is not an API URL; give one like {DEFAULT_API}")
    return url
