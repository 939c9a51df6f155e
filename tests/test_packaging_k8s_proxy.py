"""The proxy in deploy/k8s holds only what serving needs: its own secret, a read-only role."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from app.settings import SECRET_VARIABLES, Settings
from app.settings_parts import SettingsError
from tests.support.k8s import K8S, configmap, load

PROXY_SECRET_KEYS = {"SCALEMESH_DATABASE_URL", "SCALEMESH_REDIS_URL", "SCALEMESH_PREVIEW_KEY"}


def env_from(deployment: str) -> set[str]:
    (box,) = load(deployment)["spec"]["template"]["spec"]["containers"]
    return {next(iter(ref.values()))["name"] for ref in box["envFrom"]}


def test_the_proxy_gets_its_own_secret_never_the_apis() -> None:
    secret = load("proxy-secret.yaml")
    text = (K8S / "proxy-secret.yaml").read_text()

    assert set(secret["stringData"]) == PROXY_SECRET_KEYS
    assert PROXY_SECRET_KEYS <= SECRET_VARIABLES
    assert set(secret["stringData"].values()) == {""}, "a template carries no real values"
    assert "postgresql://scalemesh_proxy:" in text, "the read-only role, not the owner"
    assert "scalemesh-secrets" not in env_from("proxy-deployment.yaml")
    assert secret["metadata"]["name"] in env_from("proxy-deployment.yaml")
    assert "scalemesh-proxy-secrets" not in env_from("api-deployment.yaml")


def test_the_proxy_starts_with_its_secret_and_the_configmap_alone() -> None:
    """What the proxy pod sees: enough for `serve proxy`, not enough for `serve api`."""
    environ = {
        **configmap(),
        "SCALEMESH_DATABASE_URL": "postgresql://scalemesh_proxy:pw@postgres:5432/scalemesh",
        "SCALEMESH_REDIS_URL": "redis://redis:6379/0",
        "SCALEMESH_PREVIEW_KEY": "p1:" + "cd" * 32,
    }

    settings = Settings.from_env(environ)

    settings.check_part("proxy")
    assert settings.secret_keys is None
    assert settings.github is None
    with pytest.raises(SettingsError, match="SCALEMESH_SECRET_KEY"):
        settings.check_part("api")


def test_the_proxy_role_may_only_read() -> None:
    sql = (K8S / "proxy-db-role.sql").read_text()
    statements = re.sub(r"--[^\n]*", "", sql)

    grants = re.findall(r"\bGRANT\s+(\w+)\s+ON\s+(\w+)", statements, re.IGNORECASE)
    assert sorted(grants) == [("SELECT", "ALL"), ("SELECT", "TABLES"), ("USAGE", "SCHEMA")]
    assert "default_transaction_read_only = on" in statements
    assert "NOSUPERUSER" in statements
    assert not re.search(r"\b(INSERT|UPDATE|DELETE|TRUNCATE|ALL PRIVILEGES)\b", statements)
    assert urlsplit(
        "postgresql://scalemesh_proxy:pw@postgres:5432/scalemesh"
    ).username in re.findall(r"ROLE (\w+)", statements)
