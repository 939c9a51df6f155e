"""Read every Scale Mesh setting once, at start-up, into one frozen object.

This is the only module that looks at environment variables, and the index of every knob:
`deploy/k8s` config maps and the README's table list exactly the names in `VARIABLES`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - the name of the file, not a secret

VARIABLES: tuple[str, ...] = (
    "SCALEMESH_DATA_DIR",
    "SCALEMESH_DATABASE_URL",
    "SCALEMESH_REDIS_URL",
    "SCALEMESH_STORAGE_URL",
    "SCALEMESH_RUNNER",
    "SCALEMESH_ECS_CLUSTER",
    "SCALEMESH_ECS_TASK_DEFINITION",
    "SCALEMESH_ECS_CONTAINER",
    "SCALEMESH_ECS_SUBNETS",
    "SCALEMESH_ECS_SECURITY_GROUPS",
    "SCALEMESH_ECS_ASSIGN_PUBLIC_IP",
    "SCALEMESH_PUBLIC_URL",
    "SCALEMESH_ROOT_DOMAIN",
    "SCALEMESH_DEPLOYMENT_URL_TEMPLATE",
    "SCALEMESH_SECRET_KEY",
    "SCALEMESH_GITHUB_APP_ID",
    "SCALEMESH_GITHUB_PRIVATE_KEY",
    "SCALEMESH_GITHUB_WEBHOOK_SECRET",
    "SCALEMESH_GITHUB_API_URL",
    "SCALEMESH_GITHUB_APP_SLUG",
    "SCALEMESH_BUILD_TIMEOUT",
    "SCALEMESH_MAX_CONCURRENT_BUILDS",
    "SCALEMESH_RECONCILE_INTERVAL",
    "SCALEMESH_PROXY_CACHE_MB",
    "SCALEMESH_LOG_LEVEL",
    "AWS_ENDPOINT_URL",
)

SECRET_VARIABLES = frozenset(
    {
        "SCALEMESH_SECRET_KEY",
        "SCALEMESH_GITHUB_PRIVATE_KEY",
        "SCALEMESH_GITHUB_WEBHOOK_SECRET",
        "SCALEMESH_DATABASE_URL",
        "SCALEMESH_REDIS_URL",
    }
)


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


class Runner(StrEnum):
    LOCAL = "local"
    ECS = "ecs"


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


@dataclass(frozen=True, slots=True)
class GitHubSettings:
    app_id: int
    private_key: Secret
    """PEM text of the App's RSA key (loaded from a path when the variable names a file)."""
    webhook_secret: Secret
    """HMAC key for X-Hub-Signature-256."""
    app_slug: str = "scale-mesh"
    """The App's URL name on GitHub (`/apps/<slug>`), for install links."""


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database: DatabaseSettings
    storage: StorageSettings
    secret_key: Secret
    redis_url: Secret | None = None
    runner: Runner = Runner.LOCAL
    ecs: EcsSettings | None = None
    public_url: str = "http://localhost:8000"
    root_domain: str = "localhost"
    deployment_url_template: str = "http://{host}:8080"
    github: GitHubSettings | None = None
    github_api_url: str = "https://api.github.com"
    build_timeout: int = 900
    max_concurrent_builds: int = 2
    reconcile_interval: float = 1.0
    """Seconds between two passes of the reconcile loop."""
    proxy_cache_mb: int = 256
    log_level: str = "INFO"
    runner_env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """What a local build process inherits from ours: PATH, locale, AWS credentials for its
    upload (never passed on to the project's own commands)."""
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The raw values each setting came from, for `describe()`; secrets are masked there."""
    alias_channel: str = "scalemesh:aliases"
    """The Redis pub/sub channel that carries alias moves from the API to the proxies. Not read
    from the environment: every API and proxy of a deployment must agree on it, and only tests
    change it (each test its own channel, so parallel test workers never hear each other)."""

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def deployment_url(self, label: str) -> str:
        return self.deployment_url_template.format(host=f"{label}.{self.root_domain}")

    def describe(self) -> dict[str, str]:
        """Every variable with its effective value, secrets shown as `***`."""
        return {
            name: "***" if name in SECRET_VARIABLES and value else value
            for name, value in self.sources.items()
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (the process environment when omitted).

        When `SCALEMESH_SECRET_KEY` is unset, a key is generated once into the data directory
        (mode 0600) and reused on every later start.
        """
        env = _Reader(os.environ if environ is None else environ)
        data_dir = Path(env.get("SCALEMESH_DATA_DIR", ".scalemesh"))

        database = _database(
            env.get("SCALEMESH_DATABASE_URL", f"sqlite:///{data_dir / 'scalemesh.sqlite3'}")
        )
        storage = _storage(
            env.get("SCALEMESH_STORAGE_URL", f"file://{data_dir.resolve()}/storage"),
            env.get("AWS_ENDPOINT_URL", "") or None,
        )
        redis_url = env.get("SCALEMESH_REDIS_URL", "")
        if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise SettingsError(
                "SCALEMESH_REDIS_URL", "must start with redis://, rediss:// or unix://"
            )

        runner_name = env.get("SCALEMESH_RUNNER", "local")
        try:
            runner = Runner(runner_name)
        except ValueError:
            raise SettingsError(
                "SCALEMESH_RUNNER", f"must be 'local' or 'ecs', not {runner_name!r}"
            ) from None
        ecs = _ecs(env) if runner is Runner.ECS else None

        public_url = env.get("SCALEMESH_PUBLIC_URL", "http://localhost:8000").rstrip("/")
        _require_http_url("SCALEMESH_PUBLIC_URL", public_url)
        root_domain = env.get("SCALEMESH_ROOT_DOMAIN", "localhost").strip(".").lower()
        if not root_domain or any(not _is_dns_label(part) for part in root_domain.split(".")):
            raise SettingsError("SCALEMESH_ROOT_DOMAIN", "must be a domain name like example.com")
        template = env.get("SCALEMESH_DEPLOYMENT_URL_TEMPLATE", "http://{host}:8080")
        if "{host}" not in template:
            raise SettingsError(
                "SCALEMESH_DEPLOYMENT_URL_TEMPLATE", "must contain {host}, e.g. https://{host}"
            )
        _require_http_url("SCALEMESH_DEPLOYMENT_URL_TEMPLATE", template.replace("{host}", "x"))

        github_api_url = env.get("SCALEMESH_GITHUB_API_URL", "https://api.github.com").rstrip("/")
        _require_http_url("SCALEMESH_GITHUB_API_URL", github_api_url)

        log_level = env.get("SCALEMESH_LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError("SCALEMESH_LOG_LEVEL", "must be one of DEBUG, INFO, WARNING, ERROR")

        secret_key = env.get("SCALEMESH_SECRET_KEY", "")
        if not secret_key:
            secret_key = load_or_create_secret_key(data_dir)
        elif len(secret_key) < 32:
            raise SettingsError("SCALEMESH_SECRET_KEY", "must be at least 32 characters long")
        env.seen["SCALEMESH_SECRET_KEY"] = secret_key

        return cls(
            data_dir=data_dir,
            database=database,
            storage=storage,
            secret_key=Secret(secret_key),
            redis_url=Secret(redis_url) if redis_url else None,
            runner=runner,
            ecs=ecs,
            public_url=public_url,
            root_domain=root_domain,
            deployment_url_template=template,
            github=_github(env),
            github_api_url=github_api_url,
            build_timeout=env.positive_int("SCALEMESH_BUILD_TIMEOUT", 900),
            max_concurrent_builds=env.positive_int("SCALEMESH_MAX_CONCURRENT_BUILDS", 2),
            reconcile_interval=env.positive_float("SCALEMESH_RECONCILE_INTERVAL", 1.0),
            runner_env=_runner_env(env.environ),
            proxy_cache_mb=env.positive_int("SCALEMESH_PROXY_CACHE_MB", 256),
            log_level=log_level,
            sources=dict(env.seen),
        )


class _Reader:
    """Reads variables and remembers the effective value of each, for `Settings.describe()`."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.seen: dict[str, str] = {}

    def get(self, name: str, default: str = "") -> str:
        value = self._environ.get(name, "").strip() or default
        self.seen[name] = value
        return value

    @property
    def environ(self) -> Mapping[str, str]:
        return self._environ

    def positive_float(self, name: str, default: float) -> float:
        raw = self.get(name, str(default))
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"must be a number, not {raw!r}") from None
        if not value > 0:
            raise SettingsError(name, f"must be greater than 0, not {raw}")
        return value

    def positive_int(self, name: str, default: int) -> int:
        raw = self.get(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, f"must be a whole number, not {raw!r}") from None
        if value <= 0:
            raise SettingsError(name, f"must be greater than 0, not {value}")
        return value


_RUNNER_ENV_NAMES = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"})


def _runner_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in environ.items()
        if name in _RUNNER_ENV_NAMES or (name.startswith("AWS_") and name != "AWS_PROFILE")
    }


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


def _database(url: str) -> DatabaseSettings:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them.
        raw_path = url.removeprefix("sqlite://").removeprefix("/")
        if not raw_path:
            raise SettingsError("SCALEMESH_DATABASE_URL", "sqlite:/// URL needs a file path")
        return DatabaseSettings(DatabaseKind.SQLITE, Secret(url), Path(raw_path))
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.hostname and "host=" not in parts.query:
            raise SettingsError(
                "SCALEMESH_DATABASE_URL",
                "a postgresql:// URL needs a host, e.g. @db:5432/scalemesh",
            )
        return DatabaseSettings(DatabaseKind.POSTGRES, Secret(url))
    raise SettingsError(
        "SCALEMESH_DATABASE_URL", "must start with sqlite:/// or postgresql:// (value hidden)"
    )


def _storage(url: str, endpoint_url: str | None) -> StorageSettings:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not parts.path:
            raise SettingsError("SCALEMESH_STORAGE_URL", "file:// URL needs a directory path")
        return StorageSettings(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise SettingsError("SCALEMESH_STORAGE_URL", "s3:// URL needs a bucket: s3://bucket")
        if endpoint_url:
            _require_http_url("AWS_ENDPOINT_URL", endpoint_url)
        return StorageSettings(url, endpoint_url)
    raise SettingsError("SCALEMESH_STORAGE_URL", f"must start with file:// or s3://, not {url!r}")


def _ecs(env: _Reader) -> EcsSettings:
    def required(name: str) -> str:
        value = env.get(name, "")
        if not value:
            raise SettingsError(name, "is required when SCALEMESH_RUNNER=ecs")
        return value

    def listed(name: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in required(name).split(",") if item.strip())

    public_ip = env.get("SCALEMESH_ECS_ASSIGN_PUBLIC_IP", "false").lower()
    if public_ip not in ("true", "false", "enabled", "disabled", "1", "0"):
        raise SettingsError("SCALEMESH_ECS_ASSIGN_PUBLIC_IP", "must be true or false")
    return EcsSettings(
        cluster=required("SCALEMESH_ECS_CLUSTER"),
        task_definition=required("SCALEMESH_ECS_TASK_DEFINITION"),
        container=env.get("SCALEMESH_ECS_CONTAINER", "builder"),
        subnets=listed("SCALEMESH_ECS_SUBNETS"),
        security_groups=listed("SCALEMESH_ECS_SECURITY_GROUPS"),
        assign_public_ip=public_ip in ("true", "enabled", "1"),
    )


def _github(env: _Reader) -> GitHubSettings | None:
    names = (
        "SCALEMESH_GITHUB_APP_ID",
        "SCALEMESH_GITHUB_PRIVATE_KEY",
        "SCALEMESH_GITHUB_WEBHOOK_SECRET",
    )
    values = {name: env.get(name, "") for name in names}
    if not any(values.values()):
        return None
    for name, value in values.items():
        if not value:
            given = ", ".join(n for n, v in values.items() if v)
            raise SettingsError(
                name, f"is required too: the GitHub App needs all three, and {given} is set"
            )
    raw_id = values["SCALEMESH_GITHUB_APP_ID"]
    if not raw_id.isdigit():
        raise SettingsError("SCALEMESH_GITHUB_APP_ID", f"must be a number, not {raw_id!r}")
    slug = env.get("SCALEMESH_GITHUB_APP_SLUG", "scale-mesh").strip().lower()
    if not _is_dns_label(slug):
        raise SettingsError(
            "SCALEMESH_GITHUB_APP_SLUG", f"must be the App's URL name like scale-mesh, not {slug!r}"
        )
    return GitHubSettings(
        app_id=int(raw_id),
        private_key=Secret(_private_key(values["SCALEMESH_GITHUB_PRIVATE_KEY"])),
        webhook_secret=Secret(values["SCALEMESH_GITHUB_WEBHOOK_SECRET"]),
        app_slug=slug,
    )


def _private_key(value: str) -> str:
    name = "SCALEMESH_GITHUB_PRIVATE_KEY"
    if "-----BEGIN" in value:
        pem = value.replace("\\n", "\n")  # one-line .env files carry literal \n
    else:
        try:
            pem = Path(value).read_text()
        except OSError as exc:
            raise SettingsError(
                name, f"is neither PEM text nor a readable file ({exc.strerror})"
            ) from None
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise SettingsError(name, "is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SettingsError(name, "must be the App's RSA private key from GitHub")
    return pem


def _require_http_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(name, f"must be an http:// or https:// URL, not {value!r}")


def _is_dns_label(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
    )
