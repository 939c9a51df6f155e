"""The parts `Settings` is made of: `Secret`, `SettingsError`, one frozen dataclass per group.

A leaf: `app.settings` and the modules that parse each group import these, never the reverse.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and what to do."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key of a `KeyRing`: its id travels with what it sealed or signed."""

    id: str
    secret: Secret

    def mac(self, message: bytes) -> str:
        """HMAC-SHA256 of `message` under this key, as hex."""
        return hmac.new(self.secret.reveal().encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Keys with ids, for rotation: the first signs and seals, every one verifies and opens.

    Written `SCALEMESH_SECRET_KEY=k2:<new>,k1:<old>`: add the new key in front on every
    replica, and drop the old one once nothing sealed or signed with it is left.
    """

    keys: tuple[SigningKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key ring needs at least one key")

    @property
    def primary(self) -> SigningKey:
        return self.keys[0]

    def find(self, key_id: str) -> SigningKey | None:
        return next((key for key in self.keys if key.id == key_id), None)

    def macs(self, message: bytes) -> list[str]:
        """`message`'s HMAC under every key, the primary's first: what a stored hash may be."""
        return [key.mac(message) for key in self.keys]

    def __repr__(self) -> str:
        return f"KeyRing(ids={[key.id for key in self.keys]!r})"


class DatabaseKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    kind: DatabaseKind
    url: Secret
    """Connection URL; for SQLite, `path` is what the engine opens."""
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class StorageSettings:
    url: str
    """`file://<dir>` or `s3://bucket[/prefix]`."""
    endpoint_url: str | None = None
    """`AWS_ENDPOINT_URL`, for S3-compatible stores (MinIO, R2, ...)."""

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def local_root(self) -> Path:
        return Path(urlsplit(self.url).path)

    @property
    def bucket(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def prefix(self) -> str:
        path = urlsplit(self.url).path.strip("/")
        return f"{path}/" if path else ""


@dataclass(frozen=True, slots=True)
class EcsSettings:
    cluster: str
    task_definition: str
    container: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: bool
    upload_role_arn: str
    """The role the API assumes, narrowed per build by a session policy, to hand each builder
    credentials that may write its own deployment's prefix and nothing else."""


class Signup(StrEnum):
    """Who may make an account with a password (`POST /user/signup`)."""

    OPEN = "open"
    FIRST = "first"
    """Only the first account (the admin); admins add the others."""
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    """The GitHub App's client credentials, for "Sign in with GitHub" (user authorization)."""

    client_id: str
    client_secret: Secret


@dataclass(frozen=True, slots=True)
class GitHubSettings:
    app_id: int
    private_key: Secret
    """PEM text of the App's RSA key (loaded from a path when the variable names a file)."""
    webhook_secret: Secret
    """HMAC key for X-Hub-Signature-256."""
    app_slug: str = "scale-mesh"
    """The App's URL name on GitHub (`/apps/<slug>`), for install links."""
