"""Settings: defaults, every variable, masked secrets, and errors that name the variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.aliases import ALIAS_CHANNEL
from app.settings import VARIABLES, Runner, Settings
from app.settings_parts import DatabaseKind, Secret, SettingsError, Signup
from app.settings_retention import RetentionSettings
from builder.spec import BuildLimits

KEY = "k" * 40


def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def test_defaults_need_no_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    settings = Settings.from_env({})

    assert settings.data_dir == Path(".scalemesh")
    assert settings.database.kind is DatabaseKind.SQLITE
    assert settings.database.path == Path(".scalemesh/scalemesh.sqlite3")
    assert settings.storage.url == f"file://{tmp_path}/.scalemesh/storage"
    assert settings.storage.local_root == tmp_path / ".scalemesh" / "storage"
    assert settings.redis_url is None
    assert settings.runner is Runner.LOCAL
    assert settings.ecs is None
    assert settings.public_url == "http://localhost:8000"
    assert settings.root_domain == "localhost"
    assert settings.deployment_url("web") == "http://web.localhost:8080"
    assert settings.github is None
    assert settings.github_api_url == "https://api.github.com"
    assert settings.build_timeout == 900
    assert settings.proxy_cache_mb == 256
    assert settings.secure_cookies is False


def test_every_variable_is_read(tmp_path: Path) -> None:
    pem = rsa_pem()
    environ = {
        "SCALEMESH_DATA_DIR": str(tmp_path),
        "SCALEMESH_DATABASE_URL": "postgresql://scalemesh:pw@db:5432/scalemesh",
        "SCALEMESH_REDIS_URL": "redis://redis:6379/0",
        "SCALEMESH_STORAGE_URL": "s3://deployments/prod",
        "SCALEMESH_RUNNER": "ecs",
        "SCALEMESH_ECS_CLUSTER": "builds",
        "SCALEMESH_ECS_TASK_DEFINITION": "scalemesh-builder:3",
        "SCALEMESH_ECS_CONTAINER": "build",
        "SCALEMESH_ECS_SUBNETS": "subnet-a, subnet-b",
        "SCALEMESH_ECS_SECURITY_GROUPS": "sg-1",
        "SCALEMESH_ECS_ASSIGN_PUBLIC_IP": "true",
        "SCALEMESH_ECS_UPLOAD_ROLE_ARN": "arn:aws:iam::123456789012:role/scalemesh-build-upload",
        "SCALEMESH_PUBLIC_URL": "https://deploy.example.com/",
        "SCALEMESH_ROOT_DOMAIN": "Example.app.",
        "SCALEMESH_DEPLOYMENT_URL_TEMPLATE": "https://{host}",
        "SCALEMESH_SECRET_KEY": KEY,
        "SCALEMESH_PREVIEW_KEY": "p1:" + "9" * 64,
        "SCALEMESH_GITHUB_APP_ID": "1234",
        "SCALEMESH_GITHUB_PRIVATE_KEY": pem.replace("\n", "\\n"),
        "SCALEMESH_GITHUB_WEBHOOK_SECRET": "hook-secret",
        "SCALEMESH_GITHUB_API_URL": "https://ghe.example.com/api/v3",
        "SCALEMESH_GITHUB_APP_SLUG": "Our-Deploys",
        "SCALEMESH_GITHUB_WEB_URL": "https://ghe.example.com/",
        "SCALEMESH_GITHUB_CLIENT_ID": "Iv1.abc",
        "SCALEMESH_GITHUB_CLIENT_SECRET": "client-secret",
        "SCALEMESH_SIGNUP": "Open",
        "SCALEMESH_BUILD_TIMEOUT": "600",
        "SCALEMESH_BUILD_CPU_SECONDS": "120",
        "SCALEMESH_BUILD_MEMORY_MB": "1024",
        "SCALEMESH_BUILD_MAX_PROCESSES": "256",
        "SCALEMESH_BUILD_MAX_FILES": "500",
        "SCALEMESH_BUILD_MAX_FILE_MB": "10",
        "SCALEMESH_BUILD_MAX_OUTPUT_MB": "100",
        "SCALEMESH_BUILD_MAX_LOG_MB": "4",
        "SCALEMESH_BUILD_CACHE_MB": "256",
        "SCALEMESH_BUILD_ATTEMPTS": "5",
        "SCALEMESH_UNSAFE_LOCAL_BUILDS": "yes",
        "SCALEMESH_SANDBOX_READONLY_PATHS": "/opt/node:/srv/tools",
        "SCALEMESH_BUILD_EGRESS_ALLOW_NETWORKS": "203.0.113.0/24, 10.1.2.3",
        "SCALEMESH_MAX_CONCURRENT_BUILDS": "8",
        "SCALEMESH_RECONCILE_INTERVAL": "0.25",
        "SCALEMESH_PROXY_CACHE_MB": "64",
        "SCALEMESH_LOG_LEVEL": "debug",
        "SCALEMESH_METRICS_TOKEN": "m" * 20,
        "SCALEMESH_PROXY_METRICS_HOSTS": "scalemesh-proxy.scalemesh.svc",
        "SCALEMESH_CNAME_TARGET": "Edge.Example.net.",
        "SCALEMESH_PUBLIC_IPS": "203.0.113.10, 2001:DB8::10",
        "SCALEMESH_DNS_RESOLVERS": "10.0.0.2, 127.0.0.1:5353",
        "SCALEMESH_PREVIEW_TTL_AFTER_CLOSE": "0",
        "SCALEMESH_RETENTION_CANCELED_DAYS": "7",
        "SCALEMESH_RETENTION_ERRORED_DAYS": "0.5",
        "SCALEMESH_RETENTION_PREVIEW_DAYS": "0",
        "SCALEMESH_RETENTION_PRODUCTION_DAYS": "730",
        "AWS_ENDPOINT_URL": "http://minio:9000",
    }
    assert set(environ) == set(VARIABLES)

    settings = Settings.from_env(environ)

    assert settings.database.kind is DatabaseKind.POSTGRES
    assert settings.retention == RetentionSettings(
        ttl_after_close=timedelta(0),
        canceled=timedelta(days=7),
        errored=timedelta(hours=12),
        preview=None,
        production=timedelta(days=730),
    )
    assert settings.redis_url == Secret("redis://redis:6379/0")
    assert (settings.storage.bucket, settings.storage.prefix) == ("deployments", "prod/")
    assert settings.storage.endpoint_url == "http://minio:9000"
    assert settings.runner is Runner.ECS
    assert settings.ecs is not None
    assert settings.ecs.subnets == ("subnet-a", "subnet-b")
    assert settings.ecs.security_groups == ("sg-1",)
    assert settings.ecs.container == "build"
    assert settings.ecs.assign_public_ip is True
    assert settings.ecs.upload_role_arn == "arn:aws:iam::123456789012:role/scalemesh-build-upload"
    assert settings.public_url == "https://deploy.example.com"
    assert settings.secure_cookies is True
    assert settings.root_domain == "example.app"
    assert settings.deployment_url("web") == "https://web.example.app"
    assert settings.github is not None
    assert settings.github.app_id == 1234
    assert settings.github.private_key.reveal() == pem
    assert settings.github.webhook_secret.reveal() == "hook-secret"
    assert settings.github.app_slug == "our-deploys"
    assert settings.github_api_url == "https://ghe.example.com/api/v3"
    assert settings.github_web_url == "https://ghe.example.com"
    assert settings.oauth is not None
    assert settings.oauth.client_id == "Iv1.abc"
    assert settings.oauth.client_secret.reveal() == "client-secret"
    assert settings.signup is Signup.OPEN
    assert settings.describe()["SCALEMESH_GITHUB_CLIENT_SECRET"] == "***"
    assert settings.build_timeout == 600
    assert settings.build_limits == BuildLimits(
        cpu_seconds=120,
        memory_mb=1024,
        processes=256,
        max_files=500,
        max_file_mb=10,
        max_output_mb=100,
        max_log_mb=4,
        cache_mb=256,
    )
    assert settings.build_attempts == 5
    assert settings.unsafe_local_builds is True
    assert settings.sandbox_readonly_paths == (Path("/opt/node"), Path("/srv/tools"))
    assert settings.egress_allow_networks == ("203.0.113.0/24", "10.1.2.3/32")
    assert settings.max_concurrent_builds == 8
    assert settings.reconcile_interval == 0.25
    assert settings.proxy_cache_mb == 64
    assert settings.log_level == "DEBUG"
    assert settings.preview_keys is not None
    assert settings.preview_keys.primary.id == "p1"
    assert settings.describe()["SCALEMESH_PREVIEW_KEY"] == "***"
    assert settings.domains.cname_target == "edge.example.net"
    assert settings.domains.public_ips == ("203.0.113.10", "2001:db8::10")
    assert settings.domains.dns_resolvers == (("10.0.0.2", 53), ("127.0.0.1", 5353))


def test_secrets_never_show(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "SCALEMESH_DATA_DIR": str(tmp_path),
            "SCALEMESH_SECRET_KEY": KEY,
            "SCALEMESH_DATABASE_URL": "postgresql://u:db-password@db/x",
            "SCALEMESH_REDIS_URL": "redis://:redis-password@r:6379",
            "SCALEMESH_GITHUB_APP_ID": "1",
            "SCALEMESH_GITHUB_PRIVATE_KEY": rsa_pem(),
            "SCALEMESH_GITHUB_WEBHOOK_SECRET": "hook-secret",
        }
    )

    shown = repr(settings) + str(settings.describe())

    for secret in (KEY, "db-password", "redis-password", "hook-secret", "PRIVATE KEY"):
        assert secret not in shown
    assert settings.describe()["SCALEMESH_SECRET_KEY"] == "***"
    assert settings.describe()["SCALEMESH_ROOT_DOMAIN"] == "localhost"
    assert str(settings.secret_key) == "***"
    assert hash(settings.secret_key) == hash(Secret(KEY))
    assert settings.secret_key != KEY


def test_the_private_key_may_be_a_path(tmp_path: Path) -> None:
    pem = rsa_pem()
    (tmp_path / "app.pem").write_text(pem)

    settings = Settings.from_env(
        {
            "SCALEMESH_DATA_DIR": str(tmp_path),
            "SCALEMESH_GITHUB_APP_ID": "1",
            "SCALEMESH_GITHUB_PRIVATE_KEY": str(tmp_path / "app.pem"),
            "SCALEMESH_GITHUB_WEBHOOK_SECRET": "s",
        }
    )

    assert settings.github is not None
    assert settings.github.private_key.reveal() == pem


def ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


GITHUB = {
    "SCALEMESH_GITHUB_APP_ID": "1",
    "SCALEMESH_GITHUB_WEBHOOK_SECRET": "s",
}


@pytest.mark.parametrize(
    ("environ", "variable", "fragment"),
    [
        ({"SCALEMESH_DATABASE_URL": "mysql://x"}, "SCALEMESH_DATABASE_URL", "sqlite:///"),
        ({"SCALEMESH_DATABASE_URL": "sqlite://"}, "SCALEMESH_DATABASE_URL", "file path"),
        ({"SCALEMESH_DATABASE_URL": "postgresql:///x"}, "SCALEMESH_DATABASE_URL", "needs a host"),
        ({"SCALEMESH_REDIS_URL": "http://r"}, "SCALEMESH_REDIS_URL", "redis://"),
        ({"SCALEMESH_STORAGE_URL": "gs://b"}, "SCALEMESH_STORAGE_URL", "file:// or s3://"),
        ({"SCALEMESH_STORAGE_URL": "s3://"}, "SCALEMESH_STORAGE_URL", "needs a bucket"),
        ({"SCALEMESH_STORAGE_URL": "file://"}, "SCALEMESH_STORAGE_URL", "directory path"),
        (
            {"SCALEMESH_STORAGE_URL": "s3://b", "AWS_ENDPOINT_URL": "minio:9000"},
            "AWS_ENDPOINT_URL",
            "http://",
        ),
        ({"SCALEMESH_RUNNER": "kubernetes"}, "SCALEMESH_RUNNER", "'local' or 'ecs'"),
        ({"SCALEMESH_RUNNER": "ecs"}, "SCALEMESH_ECS_CLUSTER", "required when"),
        ({"SCALEMESH_PUBLIC_URL": "localhost:8000"}, "SCALEMESH_PUBLIC_URL", "http://"),
        ({"SCALEMESH_ROOT_DOMAIN": "bad_domain"}, "SCALEMESH_ROOT_DOMAIN", "domain name"),
        (
            {"SCALEMESH_DEPLOYMENT_URL_TEMPLATE": "https://x"},
            "SCALEMESH_DEPLOYMENT_URL_TEMPLATE",
            "{host}",
        ),
        (
            {"SCALEMESH_DEPLOYMENT_URL_TEMPLATE": "{host}:8080"},
            "SCALEMESH_DEPLOYMENT_URL_TEMPLATE",
            "http://",
        ),
        ({"SCALEMESH_GITHUB_API_URL": "api.github.com"}, "SCALEMESH_GITHUB_API_URL", "http"),
        ({"SCALEMESH_LOG_LEVEL": "loud"}, "SCALEMESH_LOG_LEVEL", "one of"),
        ({"SCALEMESH_SECRET_KEY": "short"}, "SCALEMESH_SECRET_KEY", "at least 32"),
        ({"SCALEMESH_BUILD_TIMEOUT": "abc"}, "SCALEMESH_BUILD_TIMEOUT", "whole number"),
        ({"SCALEMESH_BUILD_TIMEOUT": "0"}, "SCALEMESH_BUILD_TIMEOUT", "greater than 0"),
        ({"SCALEMESH_PROXY_CACHE_MB": "-1"}, "SCALEMESH_PROXY_CACHE_MB", "greater than 0"),
        ({"SCALEMESH_RECONCILE_INTERVAL": "soon"}, "SCALEMESH_RECONCILE_INTERVAL", "a number"),
        ({"SCALEMESH_RECONCILE_INTERVAL": "0"}, "SCALEMESH_RECONCILE_INTERVAL", "greater than 0"),
        (
            {"SCALEMESH_GITHUB_APP_ID": "1"},
            "SCALEMESH_GITHUB_PRIVATE_KEY",
            "needs all three, and SCALEMESH_GITHUB_APP_ID is set",
        ),
        (
            {**GITHUB, "SCALEMESH_GITHUB_PRIVATE_KEY": "x", "SCALEMESH_GITHUB_APP_SLUG": "a b"},
            "SCALEMESH_GITHUB_APP_SLUG",
            "URL name",
        ),
        (
            {**GITHUB, "SCALEMESH_GITHUB_APP_ID": "my-app", "SCALEMESH_GITHUB_PRIVATE_KEY": "x"},
            "SCALEMESH_GITHUB_APP_ID",
            "a number",
        ),
        (
            {**GITHUB, "SCALEMESH_GITHUB_PRIVATE_KEY": "/no/such/key.pem"},
            "SCALEMESH_GITHUB_PRIVATE_KEY",
            "neither PEM text nor a readable file",
        ),
        (
            {**GITHUB, "SCALEMESH_GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nxx"},
            "SCALEMESH_GITHUB_PRIVATE_KEY",
            "not an unencrypted PEM",
        ),
        (
            {**GITHUB, "SCALEMESH_GITHUB_PRIVATE_KEY": ec_pem()},
            "SCALEMESH_GITHUB_PRIVATE_KEY",
            "RSA private key",
        ),
    ],
)
def test_a_bad_value_names_its_variable(
    tmp_path: Path, environ: dict[str, str], variable: str, fragment: str
) -> None:
    environ = {"SCALEMESH_DATA_DIR": str(tmp_path), **environ}

    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)

    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert fragment in str(caught.value)


def test_ecs_public_ip_must_be_a_boolean(tmp_path: Path) -> None:
    environ = {
        "SCALEMESH_DATA_DIR": str(tmp_path),
        "SCALEMESH_RUNNER": "ecs",
        "SCALEMESH_ECS_CLUSTER": "c",
        "SCALEMESH_ECS_TASK_DEFINITION": "t",
        "SCALEMESH_ECS_SUBNETS": "s",
        "SCALEMESH_ECS_SECURITY_GROUPS": "g",
        "SCALEMESH_ECS_ASSIGN_PUBLIC_IP": "maybe",
        "SCALEMESH_ECS_UPLOAD_ROLE_ARN": "arn:aws-cn:iam::123456789012:role/path/upload",
    }

    with pytest.raises(SettingsError, match="SCALEMESH_ECS_ASSIGN_PUBLIC_IP"):
        Settings.from_env(environ)

    environ["SCALEMESH_ECS_ASSIGN_PUBLIC_IP"] = "disabled"
    settings = Settings.from_env(environ)
    assert settings.ecs is not None
    assert settings.ecs.assign_public_ip is False
    assert settings.ecs.container == "builder"

    for wrong in ("", "scalemesh-build-upload", "arn:aws:iam::123456789012:user/upload"):
        environ["SCALEMESH_ECS_UPLOAD_ROLE_ARN"] = wrong
        with pytest.raises(SettingsError, match="SCALEMESH_ECS_UPLOAD_ROLE_ARN"):
            Settings.from_env(environ)


def test_sqlite_urls_take_relative_and_absolute_paths(tmp_path: Path) -> None:
    relative = Settings.from_env(
        {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_DATABASE_URL": "sqlite:///db/x.sqlite3"}
    )
    absolute = Settings.from_env(
        {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_DATABASE_URL": f"sqlite:///{tmp_path}/y"}
    )

    assert relative.database.path == Path("db/x.sqlite3")
    assert absolute.database.path == tmp_path / "y"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = Settings.from_env({"SCALEMESH_DATA_DIR": str(tmp_path)})

    with pytest.raises(AttributeError):
        settings.build_timeout = 1  # type: ignore[misc]


def test_the_alias_channel_is_fixed_not_configured(tmp_path: Path) -> None:
    """Every API and proxy must agree on it; only tests pick another (with `replace`)."""
    settings = Settings.from_env(
        {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_ALIAS_CHANNEL": "elsewhere"}
    )

    assert settings.alias_channel == ALIAS_CHANNEL == "scalemesh:aliases"
    assert "SCALEMESH_ALIAS_CHANNEL" not in VARIABLES
    assert "SCALEMESH_ALIAS_CHANNEL" not in settings.describe()


def test_s3_storage_without_a_custom_endpoint(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_STORAGE_URL": "s3://bucket"}
    )

    assert settings.storage.endpoint_url is None
    assert settings.storage.prefix == ""
