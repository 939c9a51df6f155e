"""Read the environment variables of each group of settings, check them, and build its part."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.settings_parts import (
    DatabaseKind,
    DatabaseSettings,
    EcsSettings,
    GitHubSettings,
    KeyRing,
    OAuthSettings,
    Secret,
    SettingsError,
    SigningKey,
    Signup,
    StorageSettings,
)
from builder.spec import BuildLimits

MIN_KEY_LENGTH = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_ROLE_ARN = re.compile(r"^arn:[a-z-]+:iam::[^:/\s]+:role/\S+$")


class EnvReader:
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

    def flag(self, name: str) -> bool:
        raw = self.get(name, "0").lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise SettingsError(name, f"must be 1 or 0, not {raw!r}")


RUNNER_ENV_NAMES = frozenset({"PATH", "LANG", "LC_ALL", "TZ"})


def runner_env(environ: Mapping[str, str], *, storage_is_s3: bool) -> dict[str, str]:
    """What the local builder process gets of ours: AWS credentials only to upload to S3.

    The builder runs outside the sandbox and never passes these to the project's commands."""
    return {
        name: value
        for name, value in environ.items()
        if name in RUNNER_ENV_NAMES
        or (storage_is_s3 and name.startswith("AWS_") and name != "AWS_PROFILE")
    }


LIMIT_VARIABLES = {
    "SCALEMESH_BUILD_CPU_SECONDS": "cpu_seconds",
    "SCALEMESH_BUILD_MEMORY_MB": "memory_mb",
    "SCALEMESH_BUILD_MAX_PROCESSES": "processes",
    "SCALEMESH_BUILD_MAX_FILES": "max_files",
    "SCALEMESH_BUILD_MAX_FILE_MB": "max_file_mb",
    "SCALEMESH_BUILD_MAX_OUTPUT_MB": "max_output_mb",
    "SCALEMESH_BUILD_MAX_LOG_MB": "max_log_mb",
    "SCALEMESH_BUILD_CACHE_MB": "cache_mb",
}
"""Each build limit's variable and its `BuildLimits` field."""


def parse_build_limits(env: EnvReader) -> BuildLimits:
    defaults = BuildLimits()
    return BuildLimits(
        **{
            field: env.positive_int(name, getattr(defaults, field))
            for name, field in LIMIT_VARIABLES.items()
        }
    )


def parse_networks(env: EnvReader, name: str) -> tuple[str, ...]:
    """Networks as their canonical text (`10.0.0.0/8`): the settings stay plain values."""
    raw = env.get(name, "")
    try:
        return tuple(str(ip_network(part.strip())) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise SettingsError(
            name, f"must be comma-separated networks like 10.0.0.0/8 ({exc})"
        ) from None


def parse_readonly_paths(env: EnvReader) -> tuple[Path, ...]:
    raw = env.get("SCALEMESH_SANDBOX_READONLY_PATHS", "")
    paths = tuple(Path(part) for part in raw.split(":") if part.strip())
    for path in paths:
        if not path.is_absolute():
            raise SettingsError(
                "SCALEMESH_SANDBOX_READONLY_PATHS", f"must be absolute paths, not {str(path)!r}"
            )
    return paths


def parse_database(url: str) -> DatabaseSettings:
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


def parse_storage(url: str, endpoint_url: str | None) -> StorageSettings:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not parts.path:
            raise SettingsError("SCALEMESH_STORAGE_URL", "file:// URL needs a directory path")
        return StorageSettings(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise SettingsError("SCALEMESH_STORAGE_URL", "s3:// URL needs a bucket: s3://bucket")
        if endpoint_url:
            require_http_url("AWS_ENDPOINT_URL", endpoint_url)
        return StorageSettings(url, endpoint_url)
    raise SettingsError("SCALEMESH_STORAGE_URL", f"must start with file:// or s3://, not {url!r}")


def parse_ecs(env: EnvReader) -> EcsSettings:
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
        upload_role_arn=_role_arn("SCALEMESH_ECS_UPLOAD_ROLE_ARN", required),
    )


def _role_arn(name: str, required: Callable[[str], str]) -> str:
    value = required(name)
    if not _ROLE_ARN.match(value):
        raise SettingsError(name, "must be an IAM role ARN: arn:aws:iam::<account>:role/<name>")
    return value


def parse_github(env: EnvReader) -> GitHubSettings | None:
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
    if not is_dns_label(slug):
        raise SettingsError(
            "SCALEMESH_GITHUB_APP_SLUG", f"must be the App's URL name like scale-mesh, not {slug!r}"
        )
    return GitHubSettings(
        app_id=int(raw_id),
        private_key=Secret(_private_key(values["SCALEMESH_GITHUB_PRIVATE_KEY"])),
        webhook_secret=Secret(values["SCALEMESH_GITHUB_WEBHOOK_SECRET"]),
        app_slug=slug,
    )


def parse_oauth(env: EnvReader) -> OAuthSettings | None:
    client_id = env.get("SCALEMESH_GITHUB_CLIENT_ID", "").strip()
    client_secret = env.get("SCALEMESH_GITHUB_CLIENT_SECRET", "")
    if not client_id and not client_secret:
        return None
    if not client_id:
        raise SettingsError(
            "SCALEMESH_GITHUB_CLIENT_ID", "is required too: SCALEMESH_GITHUB_CLIENT_SECRET is set"
        )
    if not client_secret:
        raise SettingsError(
            "SCALEMESH_GITHUB_CLIENT_SECRET", "is required too: SCALEMESH_GITHUB_CLIENT_ID is set"
        )
    return OAuthSettings(client_id=client_id, client_secret=Secret(client_secret))


def parse_signup(env: EnvReader) -> Signup:
    raw = env.get("SCALEMESH_SIGNUP", "first").strip().lower()
    try:
        return Signup(raw)
    except ValueError:
        raise SettingsError(
            "SCALEMESH_SIGNUP", f"must be 'open', 'first' or 'closed', not {raw!r}"
        ) from None


def default_web_url(api_url: str) -> str:
    """github.com, or the GitHub Enterprise host the API URL belongs to."""
    if api_url == "https://api.github.com":
        return "https://github.com"
    return api_url.removesuffix("/api/v3")


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


def require_http_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(name, f"must be an http:// or https:// URL, not {value!r}")


def is_dns_label(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
    )


MIN_METRICS_TOKEN = 16


def parse_metrics_token(env: EnvReader) -> Secret | None:
    """`SCALEMESH_METRICS_TOKEN`: unset, the API has no `/metrics`; set, it must be long."""
    token = env.get("SCALEMESH_METRICS_TOKEN")
    if not token:
        return None
    if len(token) < MIN_METRICS_TOKEN:
        raise SettingsError(
            "SCALEMESH_METRICS_TOKEN", f"must be at least {MIN_METRICS_TOKEN} characters long"
        )
    return Secret(token)


def parse_metrics_hosts(env: EnvReader, root_domain: str) -> tuple[str, ...]:
    """`SCALEMESH_PROXY_METRICS_HOSTS`: internal names the proxy answers `/metrics` on.

    Every name under the root domain is a deployment's, so none of those may be one.
    """
    raw = env.get("SCALEMESH_PROXY_METRICS_HOSTS")
    hosts = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    for host in hosts:
        if not all(is_dns_label(label) for label in host.split(".")):
            raise SettingsError("SCALEMESH_PROXY_METRICS_HOSTS", f"{host!r} is not a hostname")
        if host == root_domain or host.endswith(f".{root_domain}"):
            raise SettingsError(
                "SCALEMESH_PROXY_METRICS_HOSTS",
                f"{host!r} is under SCALEMESH_ROOT_DOMAIN, where deployments are served",
            )
    return hosts


def parse_key_ring(variable: str, raw: str) -> KeyRing:
    """`id:key,id:key,…` (the first signs and seals, every one opens) or one bare key.

    A key without an id gets one made from a hash of the key (`key_id_of`), so the same bare key
    has the same id wherever it is listed. Ids are letters, digits, `_` and `-` (at most 32).
    """
    keys: list[SigningKey] = []
    for entry in raw.split(","):
        entry = entry.strip()
        key_id, colon, value = entry.partition(":")
        if not (colon and _KEY_ID.match(key_id)):
            key_id, value = key_id_of(entry), entry
        if len(value) < MIN_KEY_LENGTH:
            raise SettingsError(
                variable, f"each key must be at least {MIN_KEY_LENGTH} characters long"
            )
        if any(key.id == key_id for key in keys):
            raise SettingsError(variable, f"the key id {key_id!r} is listed twice")
        keys.append(SigningKey(key_id, Secret(value)))
    return KeyRing(tuple(keys))


def key_id_of(value: str) -> str:
    """The id of a key given without one: 8 hex digits of a hash, which tell nothing of it."""
    return hashlib.sha256(b"scalemesh key id|" + value.encode()).hexdigest()[:8]
