"""The build config in the app: copied from the manifest when a deployment is ready (checked and
capped), answered by `GET /deployments/{id}`, shown on the deployment page; the JSON Schema
at `/schema/scalemesh.json`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.deployments import build_config, manifests
from app.deployments.build_config import BuildConfig, ConfigField, encoded, of_manifest, stored
from app.storage.local import LocalStorage
from app.tables import Deployment
from builder.siteconfig.schema import schema_bytes
from builder.spec import MANIFEST
from tests.support.api import Client
from tests.support.pages import HTML, browser_signup, deployment_ids, new_project

CONFIG: dict[str, Any] = {
    "file": "scalemesh.json",
    "fields": {
        "buildCommand": {"value": "npm run build", "source": "scalemesh.json"},
        "outputDirectory": {"value": "dist", "source": "detected"},
        "rootDirectory": {"value": ".", "source": "default"},
        "cleanUrls": {"value": True, "source": "scalemesh.json"},
        "watchPaths": {"value": ["a", "b"], "source": "scalemesh.json"},
        "trailingSlash": {"value": None, "source": "default"},
        "previews": {"value": {"enabled": True, "include": ["x"]}, "source": "scalemesh.json"},
    },
    "env": {"API_URL": "scalemesh.json: production", "TOKEN": "production"},
    "warnings": ["scalemesh.json: something <b>not</b> applied"],
}


def _deployment(client: Client) -> str:
    csrf = browser_signup(client)
    new_project(client, csrf)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    (deployment_id,) = deployment_ids(client, "my-site")
    return deployment_id


def _store(client: Client, deployment_id: str, config: object) -> None:
    client.run(
        lambda: Deployment.update({Deployment.config: json.dumps(config)}).where(
            Deployment._meta.primary_key == deployment_id
        )
    )


def test_the_api_answers_the_config_and_the_page_shows_it(client: Client) -> None:
    deployment_id = _deployment(client)
    _store(client, deployment_id, CONFIG)

    answer = client.get(f"/deployments/{deployment_id}").json()
    page = client.get(f"/deployments/{deployment_id}", headers=HTML).text

    assert answer["config"] == CONFIG
    assert "Read from <code>scalemesh.json</code>" in page
    assert (
        "<tr><td><code>buildCommand</code></td><td>npm run build</td><td>scalemesh.json</td></tr>"
        in page
    )
    assert "<tr><td><code>cleanUrls</code></td><td>true</td>" in page
    assert "<tr><td><code>watchPaths</code></td><td>a, b</td>" in page
    assert "<tr><td><code>trailingSlash</code></td><td>—</td>" in page
    assert "<td>enabled: true, include: x</td>" in page
    assert (
        "<code>API_URL</code> (scalemesh.json: production), <code>TOKEN</code> (production)" in page
    )
    assert "<li>scalemesh.json: something &lt;b&gt;not&lt;/b&gt; applied</li>" in page


def test_a_deployment_without_a_config_has_none(client: Client) -> None:
    deployment_id = _deployment(client)

    answer = client.get(f"/deployments/{deployment_id}").json()
    page = client.get(f"/deployments/{deployment_id}", headers=HTML).text

    assert answer["config"] is None
    assert "build-config" not in page


def test_a_config_with_no_file_env_or_warnings_says_so(client: Client) -> None:
    deployment_id = _deployment(client)
    _store(client, deployment_id, {"file": None, "fields": {}, "env": {}, "warnings": []})

    page = client.get(f"/deployments/{deployment_id}", headers=HTML).text

    assert "No config file: project settings and detection." in page
    assert "config-env" not in page
    assert "config-warnings" not in page


def test_a_stored_config_of_another_shape_is_left_out(client: Client) -> None:
    deployment_id = _deployment(client)
    _store(client, deployment_id, {"file": 1})

    assert client.get(f"/deployments/{deployment_id}").json()["config"] is None


# --- from the manifest ----------------------------------------------------------------------------


def _manifest(storage: LocalStorage, prefix: str, manifest: bytes) -> None:
    client_run_free = storage.root / (prefix + MANIFEST)
    client_run_free.parent.mkdir(parents=True, exist_ok=True)
    client_run_free.write_bytes(manifest)


def test_ready_copies_the_manifests_config(client: Client, tmp_path: Path) -> None:
    deployment_id = _deployment(client)
    storage = LocalStorage(tmp_path / "storage")
    _manifest(storage, "p/", json.dumps({"version": 1, "files": {}, "config": CONFIG}).encode())

    client.run(lambda: build_config.record_config(storage, "p/", deployment_id))

    assert client.get(f"/deployments/{deployment_id}").json()["config"] == CONFIG


@pytest.mark.parametrize(
    "manifest",
    [
        b'{"version": 1}',  # an older builder's: no config
        b'{"config": {"file": "x", "fields": {}, "env": {}, "warnings": [], "extra": 1}}',
        b'{"config": {"file": "x", "fields": {"a": {"value": 1, "source": "x"}}, "env": {}, '
        b'"warnings": []}}',
        b"not json",
    ],
)
def test_a_manifest_without_a_usable_config_stores_none(
    client: Client, tmp_path: Path, manifest: bytes
) -> None:
    deployment_id = _deployment(client)
    storage = LocalStorage(tmp_path / "storage")
    _manifest(storage, "p/", manifest)

    client.run(lambda: build_config.record_config(storage, "p/", deployment_id))

    assert client.get(f"/deployments/{deployment_id}").json()["config"] is None


def test_a_missing_or_huge_manifest_is_logged_and_skipped(
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment_id = _deployment(client)
    storage = LocalStorage(tmp_path / "storage")
    _manifest(storage, "big/", json.dumps({"config": CONFIG}).encode())
    monkeypatch.setattr(manifests, "MAX_MANIFEST_BYTES", 10)

    with caplog.at_level(logging.WARNING, logger="app.deployments.build_config"):
        client.run(lambda: build_config.record_config(storage, "missing/", deployment_id))
        client.run(lambda: build_config.record_config(storage, "big/", deployment_id))

    assert [record.getMessage() for record in caplog.records] == [
        "could not read the build config",
        "manifest too large to read its config",
    ]
    assert client.get(f"/deployments/{deployment_id}").json()["config"] is None


def test_what_is_stored_is_capped() -> None:
    long = "x" * 10_000
    config = BuildConfig(
        file=long,
        fields={"f": ConfigField(long, "scalemesh.json"), "w": ConfigField([long], "x")},
        env={},
        warnings=[long] * 300,
    )

    text = encoded(config)

    assert text is not None
    kept = msgspec.json.decode(text, type=BuildConfig)
    assert kept.file == "x" * 4096
    assert kept.fields["f"].value == "x" * 4096
    assert kept.fields["w"].value == ["x" * 4096]
    assert kept.warnings == []  # 200 of 4 kB would pass the cap: the warnings go first
    assert len(text) <= build_config.MAX_CONFIG_BYTES


def test_a_config_too_large_even_without_warnings_is_not_stored() -> None:
    fields = {f"f{i}": ConfigField("y" * 4096, "x") for i in range(40)}

    assert encoded(BuildConfig(file=None, fields=fields, env={}, warnings=[])) is None


def test_small_configs_are_stored_whole() -> None:
    config = of_manifest(json.dumps({"config": CONFIG}).encode())

    assert config is not None
    assert json.loads(encoded(config) or "") == CONFIG


@pytest.mark.parametrize("raw", [None, 7, "not json", b'{"file": 1}'])
def test_a_stored_value_that_is_not_a_config_reads_as_none(raw: object) -> None:
    assert stored(raw) is None


def test_a_stored_config_reads_from_text_or_bytes() -> None:
    text = json.dumps(CONFIG)

    assert stored(text) == stored(text.encode())
    assert stored(text) is not None


# --- the JSON Schema ------------------------------------------------------------------------------


def test_the_schema_is_served_without_sign_in_beside_openapi(client: Client) -> None:
    schema = client.get("/schema/scalemesh.json")
    openapi = client.get("/schema/openapi.json")

    assert schema.status_code == 200
    assert schema.headers["content-type"].startswith("application/schema+json")
    assert schema.content == schema_bytes()
    assert schema.json()["title"] == "scalemesh.json"
    assert openapi.status_code == 200
    assert openapi.json()["info"]["title"] == "Scale Mesh"
    assert "/schema/scalemesh.json" not in openapi.json()["paths"]
