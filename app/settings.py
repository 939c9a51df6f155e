"""Read every Scale Mesh setting once, at start-up, into one frozen object.

This is the only module that looks at environment variables, and the index of every knob:
`deploy/k8s` config maps and the README's table list exactly the names in `VARIABLES`. The
parts of `Settings` are in `app.settings_parts`, the parsing of each group in
`app.settings_parsing`, and the generated secret key in `app.secret_key`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from app.secret_key import load_or_create_secret_key
from app.settings_domains import DOMAIN_VARIABLES, DomainSettings, parse_domains
from app.settings_parsing import (
    LIMIT_VARIABLES,
    EnvReader,
    default_web_url,
    is_dns_label,
    parse_build_limits,
    parse_database,
    parse_ecs,
    parse_github,
    parse_key_ring,
    parse_metrics_hosts,
    parse_metrics_token,
    parse_networks,
    parse_oauth,
    parse_readonly_paths,
    parse_signup,
    parse_storage,
    require_http_url,
    runner_env,
)
from app.settings_parts import (
    DatabaseKind,
    DatabaseSettings,
    EcsSettings,
    GitHubSettings,
    KeyRing,
    OAuthSettings,
    Secret,
    SettingsError,
    Signup,
    StorageSettings,
)
from app.settings_retention import RETENTION_VARIABLES, RetentionSettings, parse_retention
from builder.spec import BuildLimits

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
    "SCALEMESH_ECS_UPLOAD_ROLE_ARN",
    "SCALEMESH_PUBLIC_URL",
    "SCALEMESH_ROOT_DOMAIN",
    "SCALEMESH_DEPLOYMENT_URL_TEMPLATE",
    "SCALEMESH_SECRET_KEY",
    "SCALEMESH_PREVIEW_KEY",
    "SCALEMESH_GITHUB_APP_ID",
    "SCALEMESH_GITHUB_PRIVATE_KEY",
    "SCALEMESH_GITHUB_WEBHOOK_SECRET",
    "SCALEMESH_GITHUB_API_URL",
    "SCALEMESH_GITHUB_APP_SLUG",
    "SCALEMESH_GITHUB_WEB_URL",
    "SCALEMESH_GITHUB_CLIENT_ID",
    "SCALEMESH_GITHUB_CLIENT_SECRET",
    "SCALEMESH_SIGNUP",
    "SCALEMESH_BUILD_TIMEOUT",
    *LIMIT_VARIABLES,
    "SCALEMESH_BUILD_ATTEMPTS",
    "SCALEMESH_UNSAFE_LOCAL_BUILDS",
    "SCALEMESH_SANDBOX_READONLY_PATHS",
    "SCALEMESH_BUILD_EGRESS_ALLOW_NETWORKS",
    "SCALEMESH_MAX_CONCURRENT_BUILDS",
    "SCALEMESH_RECONCILE_INTERVAL",
    "SCALEMESH_PROXY_CACHE_MB",
    "SCALEMESH_LOG_LEVEL",
    "SCALEMESH_METRICS_TOKEN",
    "SCALEMESH_PROXY_METRICS_HOSTS",
    *DOMAIN_VARIABLES,
    *RETENTION_VARIABLES,
    "AWS_ENDPOINT_URL",
)

SECRET_VARIABLES = frozenset(
    {
        "SCALEMESH_SECRET_KEY",
        "SCALEMESH_PREVIEW_KEY",
        "SCALEMESH_GITHUB_PRIVATE_KEY",
        "SCALEMESH_GITHUB_WEBHOOK_SECRET",
        "SCALEMESH_GITHUB_CLIENT_SECRET",
        "SCALEMESH_DATABASE_URL",
        "SCALEMESH_REDIS_URL",
        "SCALEMESH_METRICS_TOKEN",
    }
)


class Runner(StrEnum):
    LOCAL = "local"
    ECS = "ecs"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database: DatabaseSettings
    storage: StorageSettings
    secret_keys: KeyRing | None
    """Sign sessions and seal secrets at rest; None only on PostgreSQL without
    `SCALEMESH_SECRET_KEY` (the API refuses to start then; the proxy needs none)."""
    preview_keys: KeyRing | None
    """Sign and check protected previews' tokens (the API and the proxy); None only on
    PostgreSQL without `SCALEMESH_PREVIEW_KEY`. Without it, on SQLite, the secret keys."""
    redis_url: Secret | None = None
    runner: Runner = Runner.LOCAL
    ecs: EcsSettings | None = None
    public_url: str = "http://localhost:8000"
    root_domain: str = "localhost"
    deployment_url_template: str = "http://{host}:8080"
    github: GitHubSettings | None = None
    github_api_url: str = "https://api.github.com"
    github_web_url: str = "https://github.com"
    """Where users sign in and install the App: github.com or a GitHub Enterprise host."""
    oauth: OAuthSettings | None = None
    """Set: "Sign in with GitHub" is offered (the App's client id and secret)."""
    signup: Signup = Signup.FIRST
    build_timeout: int = 900
    build_limits: BuildLimits = field(default_factory=BuildLimits)
    """What one build may use (CPU, memory, processes, output, log)."""
    build_attempts: int = 3
    """Builds started for one deployment before a restart-interrupted one fails."""
    unsafe_local_builds: bool = False
    """Run local builds without a sandbox when none can be set up (never the default)."""
    sandbox_readonly_paths: tuple[Path, ...] = ()
    """More host directories the local sandbox shows read-only (a Node.js outside /usr)."""
    egress_allow_networks: tuple[str, ...] = ()
    """Non-public networks local builds may still reach (a registry mirror on the LAN)."""
    max_concurrent_builds: int = 2
    reconcile_interval: float = 1.0
    """Seconds between two passes of the reconcile loop."""
    proxy_cache_mb: int = 256
    log_level: str = "INFO"
    metrics_token: Secret | None = None
    """The bearer token of the API's `/metrics`; unset, the API has no `/metrics`."""
    proxy_metrics_hosts: tuple[str, ...] = ()
    """Hostnames (besides IP addresses) on which the proxy answers `/metrics`."""
    domains: DomainSettings = field(default_factory=DomainSettings)
    """Where custom domains must point, and which resolvers check them."""
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    """How long closed previews and each kind of deployment are kept (`app.retention`)."""
    runner_env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """What the local builder process inherits from ours: PATH, locale, and AWS credentials
    only to upload to S3 (never passed on to the project's own commands)."""
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The raw values each setting came from, for `describe()`; secrets are masked there."""
    alias_channel: str = "scalemesh:aliases"
    """The Redis pub/sub channel that carries alias moves from the API to the proxies. Not read
    from the environment: every API and proxy of a deployment must agree on it, and only tests
    change it (each test its own channel, so parallel test workers never hear each other)."""

    @property
    def secret_key(self) -> Secret:
        """The key that signs and seals now (the ring's first)."""
        return self.require_secret_keys().primary.secret

    def require_secret_keys(self) -> KeyRing:
        if self.secret_keys is None:
            raise SettingsError(
                "SCALEMESH_SECRET_KEY",
                "must be set when the database is PostgreSQL, to the same value on every "
                "replica (e.g. k1:<64 hex digits>); no key file is written then",
            )
        return self.secret_keys

    def require_preview_keys(self) -> KeyRing:
        if self.preview_keys is None:
            raise SettingsError(
                "SCALEMESH_PREVIEW_KEY",
                "must be set when the database is PostgreSQL, to the same value on the API and "
                "the proxy (e.g. k1:<64 hex digits>)",
            )
        return self.preview_keys

    def check_part(self, part: str) -> None:
        """Refuse to serve `part` ("api" or "proxy") without the keys it needs."""
        if part == "api":
            self.require_secret_keys()
        self.require_preview_keys()

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

        When `SCALEMESH_SECRET_KEY` is unset on SQLite, a key is generated once into the data
        directory (mode 0600) and reused on every later start; on PostgreSQL it stays unset
        (`secret_keys` is None) and `serve api` refuses to start.
        """
        env = EnvReader(os.environ if environ is None else environ)
        data_dir = Path(env.get("SCALEMESH_DATA_DIR", ".scalemesh"))

        database = parse_database(
            env.get("SCALEMESH_DATABASE_URL", f"sqlite:///{data_dir / 'scalemesh.sqlite3'}")
        )
        storage = parse_storage(
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
        ecs = parse_ecs(env) if runner is Runner.ECS else None

        public_url = env.get("SCALEMESH_PUBLIC_URL", "http://localhost:8000").rstrip("/")
        require_http_url("SCALEMESH_PUBLIC_URL", public_url)
        root_domain = env.get("SCALEMESH_ROOT_DOMAIN", "localhost").strip(".").lower()
        if not root_domain or any(not is_dns_label(part) for part in root_domain.split(".")):
            raise SettingsError("SCALEMESH_ROOT_DOMAIN", "must be a domain name like example.com")
        template = env.get("SCALEMESH_DEPLOYMENT_URL_TEMPLATE", "http://{host}:8080")
        if "{host}" not in template:
            raise SettingsError(
                "SCALEMESH_DEPLOYMENT_URL_TEMPLATE", "must contain {host}, e.g. https://{host}"
            )
        require_http_url("SCALEMESH_DEPLOYMENT_URL_TEMPLATE", template.replace("{host}", "x"))

        github_api_url = env.get("SCALEMESH_GITHUB_API_URL", "https://api.github.com").rstrip("/")
        require_http_url("SCALEMESH_GITHUB_API_URL", github_api_url)
        github_web_url = env.get(
            "SCALEMESH_GITHUB_WEB_URL", default_web_url(github_api_url)
        ).rstrip("/")
        require_http_url("SCALEMESH_GITHUB_WEB_URL", github_web_url)

        log_level = env.get("SCALEMESH_LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError("SCALEMESH_LOG_LEVEL", "must be one of DEBUG, INFO, WARNING, ERROR")

        postgres = database.kind is DatabaseKind.POSTGRES
        secret_raw = env.get("SCALEMESH_SECRET_KEY", "")
        secret_keys: KeyRing | None = None
        if secret_raw:
            secret_keys = parse_key_ring("SCALEMESH_SECRET_KEY", secret_raw)
        elif not postgres:
            # One machine: a key of its own in the data directory. Never on PostgreSQL, where
            # each replica would make its own and none could open another's sessions or seals.
            secret_raw = load_or_create_secret_key(data_dir)
            secret_keys = parse_key_ring("SCALEMESH_SECRET_KEY", secret_raw)
        env.seen["SCALEMESH_SECRET_KEY"] = secret_raw
        preview_raw = env.get("SCALEMESH_PREVIEW_KEY", "")
        preview_keys = secret_keys if not postgres else None
        if preview_raw:
            preview_keys = parse_key_ring("SCALEMESH_PREVIEW_KEY", preview_raw)

        return cls(
            data_dir=data_dir,
            database=database,
            storage=storage,
            secret_keys=secret_keys,
            preview_keys=preview_keys,
            redis_url=Secret(redis_url) if redis_url else None,
            runner=runner,
            ecs=ecs,
            public_url=public_url,
            root_domain=root_domain,
            deployment_url_template=template,
            github=parse_github(env),
            github_api_url=github_api_url,
            github_web_url=github_web_url,
            oauth=parse_oauth(env),
            signup=parse_signup(env),
            build_timeout=env.positive_int("SCALEMESH_BUILD_TIMEOUT", 900),
            build_limits=parse_build_limits(env),
            build_attempts=env.positive_int("SCALEMESH_BUILD_ATTEMPTS", 3),
            unsafe_local_builds=env.flag("SCALEMESH_UNSAFE_LOCAL_BUILDS"),
            sandbox_readonly_paths=parse_readonly_paths(env),
            egress_allow_networks=parse_networks(env, "SCALEMESH_BUILD_EGRESS_ALLOW_NETWORKS"),
            max_concurrent_builds=env.positive_int("SCALEMESH_MAX_CONCURRENT_BUILDS", 2),
            reconcile_interval=env.positive_float("SCALEMESH_RECONCILE_INTERVAL", 1.0),
            runner_env=runner_env(env.environ, storage_is_s3=storage.url.startswith("s3://")),
            proxy_cache_mb=env.positive_int("SCALEMESH_PROXY_CACHE_MB", 256),
            log_level=log_level,
            metrics_token=parse_metrics_token(env),
            proxy_metrics_hosts=parse_metrics_hosts(env, root_domain),
            domains=parse_domains(env, root_domain),
            retention=parse_retention(env),
            sources=dict(env.seen),
        )
