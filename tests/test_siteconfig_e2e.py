"""End to end: a pushed repository's scalemesh.json, through the GitHub App and the real builder
under the local runner, shown in the build log and answered by `GET /deployments/{id}`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from app.settings import Settings
from tests.support.api import bearer
from tests.support.git import head
from tests.support.pages import HTML
from tests.support.pushed_repo import pushed_repo

CONFIG = {
    "$schema": "https://scalemesh.example/schema/scalemesh.json",
    "outputDirectory": "site",
    "cleanUrls": True,
    "redirects": [{"source": "/old", "destination": "/", "permanent": False}],
    "env": {"production": {"API_URL": "https://api.example.com"}},
}
FILES = {
    "scalemesh.json": json.dumps(CONFIG, indent=2),
    "site/index.html": "<p>hello",
    "vercel.json": "{}",
}


def test_the_config_file_of_a_push_is_in_the_log_and_the_api(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    with pushed_repo(make_settings, database_url, tmp_path / "repo", FILES) as site:
        site.project("site", production_branch="main")
        sha = head(site.repo)

        site.push(sha)

        assert site.told(sha, "site")["state"] == "success"
        [live] = site.deployments("site")
        answer = site.client.get(f"/deployments/{live['id']}", headers=bearer(site.user_token))
        config = answer.json()["config"]
        assert config["file"] == "scalemesh.json"
        assert config["fields"]["outputDirectory"] == {"value": "site", "source": "scalemesh.json"}
        assert config["fields"]["rootDirectory"] == {"value": ".", "source": "default"}
        assert config["fields"]["framework"] == {"value": "static", "source": "detected"}
        assert config["fields"]["cleanUrls"] == {"value": True, "source": "scalemesh.json"}
        assert config["env"] == {"API_URL": "scalemesh.json: production"}
        assert config["warnings"] == ["vercel.json is not read: scalemesh.json is"]
        log = site.log(live["id"])
        assert "Config file: scalemesh.json" in log
        assert "Warning: vercel.json is not read: scalemesh.json is" in log
        assert "  outputDirectory: site (scalemesh.json)" in log
        assert "Rules from scalemesh.json: 1 redirects, 0 rewrites, 0 headers" in log
        assert "Env: API_URL (scalemesh.json: production)" in log
        assert "https://api.example.com" not in json.dumps(config)


def test_the_config_names_a_projects_env_vars_and_shows_no_value_anywhere(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    secret = "s3cr3t-value-of-the-project"
    with pushed_repo(make_settings, database_url, tmp_path / "repo", FILES) as site:
        site.project("site", production_branch="main", env={"API_TOKEN": secret})
        sha = head(site.repo)

        site.push(sha)

        assert site.told(sha, "site")["state"] == "success"
        [live] = site.deployments("site")
        headers = bearer(site.user_token)
        answer = site.client.get(f"/deployments/{live['id']}", headers=headers)
        page = site.client.get(f"/deployments/{live['id']}", headers={**headers, **HTML})
        assert "API_TOKEN" in answer.json()["config"]["env"]
        assert "API_TOKEN" in page.text
        for shown in (answer.text, page.text, site.log(live["id"])):
            assert secret not in shown
