"""scalemesh.json: every field read, rules in the RULES FORMAT, env resolved per target and
branch, and each mistake refused naming the field and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.siteconfig.records import Previews
from tests.support.siteconfig import FULL, read


def test_every_field_is_read(tmp_path: Path) -> None:
    config = read(tmp_path, {"scalemesh.json": FULL}, target="production", branch="main")

    assert config.source == "scalemesh.json"
    assert config.build_command == "npm run build:site"
    assert config.install_command == "npm ci --ignore-scripts"
    assert config.output_directory == "site"
    assert config.root_directory == "apps/web"
    assert config.framework == "vite"
    assert config.node_version == "22"
    assert config.ignore_command == "git diff --quiet HEAD^ HEAD ."
    assert config.watch_paths == ("packages/ui", "package-lock.json")
    assert config.clean_urls is True
    assert config.trailing_slash is False
    assert config.previews == Previews(True, ("feature/*",), ("feature/wip-*",))
    assert config.warnings == ()
    assert config.lines["buildCommand"] == 3
    assert config.lines["previews"] > config.lines["env"]


def test_rules_are_in_the_rules_format_with_their_lines(tmp_path: Path) -> None:
    config = read(tmp_path, {"scalemesh.json": FULL})

    assert config.rules == {
        "semantics": "vercel",
        "source": "scalemesh.json",
        "clean_urls": True,
        "trailing_slash": False,
        "redirects": [
            {"source": "/old/:slug", "destination": "/new/:slug", "status": 308, "force": False},
            {"source": "/temporary", "destination": "/here", "status": 307, "force": False},
            {
                "source": "/see",
                "destination": "https://example.com/",
                "status": 303,
                "force": False,
            },
            {
                "source": "/beta",
                "destination": "/beta-home",
                "status": 308,
                "force": False,
                "has": [
                    {"type": "cookie", "key": "beta", "value": "1"},
                    {"type": "host", "value": "a.b"},
                ],
                "missing": [{"type": "header", "key": "x-skip"}],
            },
        ],
        "rewrites": [{"source": "/app/(.*)", "destination": "/app/index.html"}],
        "headers": [{"source": "/(.*)", "headers": [["X-Frame-Options", "DENY"], ["X-Empty", ""]]}],
    }
    # json.dumps(indent=2): the redirects list opens on line 16, its first rule below it.
    redirects = config.rule_positions["redirects"]
    assert redirects[0] == ("redirects[0]", 17)
    assert [path for path, _ in redirects] == [f"redirects[{i}]" for i in range(4)]
    assert [line for _, line in redirects] == sorted(line for _, line in redirects)
    assert config.rule_positions["headers"][0][0] == "headers[0]"


def test_an_empty_file_object_sets_nothing(tmp_path: Path) -> None:
    config = read(tmp_path, {"scalemesh.json": "{}"})

    assert config.source == "scalemesh.json"
    assert config.build_command is None
    assert config.rules is None
    assert config.clean_urls is None
    assert config.env == {}
    assert config.previews == Previews()


def test_null_means_not_set(tmp_path: Path) -> None:
    nulls = {"buildCommand": None, "outputDirectory": None, "framework": None, "nodeVersion": None}

    config = read(tmp_path, {"scalemesh.json": nulls})

    assert (config.build_command, config.output_directory, config.framework) == (None, None, None)


def test_only_clean_urls_makes_rules(tmp_path: Path) -> None:
    config = read(tmp_path, {"scalemesh.json": {"cleanUrls": False, "trailingSlash": True}})

    assert config.rules is not None
    assert config.rules["trailing_slash"] is True
    assert config.clean_urls is False


# --- env: per target and branch ---------------------------------------------------------------

ENV_CASES = [
    (
        "production",
        "main",
        {"API_URL": "https://api.example.com", "MODE": "prod"},
        {"API_URL": "production", "MODE": "production"},
    ),
    (
        "production",
        "feature/x",  # production never takes a branch's variables
        {"API_URL": "https://api.example.com", "MODE": "prod"},
        {"API_URL": "production", "MODE": "production"},
    ),
    (
        "preview",
        "other",
        {"API_URL": "https://staging.example.com", "DEBUG": "1"},
        {"API_URL": "preview", "DEBUG": "preview"},
    ),
    (
        "preview",
        "feature/x",
        {"API_URL": "https://staging.example.com", "DEBUG": "2", "ONLY_X": "yes"},
        {"API_URL": "preview", "DEBUG": "branch:feature/x", "ONLY_X": "branch:feature/x"},
    ),
    (
        "preview",
        "",  # a tag or a bare commit
        {"API_URL": "https://staging.example.com", "DEBUG": "1"},
        {"API_URL": "preview", "DEBUG": "preview"},
    ),
]


@pytest.mark.parametrize(("target", "branch", "env", "scopes"), ENV_CASES)
def test_env_is_resolved_for_the_target_and_branch(
    tmp_path: Path, target: str, branch: str, env: dict[str, str], scopes: dict[str, str]
) -> None:
    config = read(tmp_path, {"scalemesh.json": {"env": FULL["env"]}}, target=target, branch=branch)

    assert dict(config.env) == env
    assert dict(config.env_scopes) == scopes
