"""The build spec survives the trip through JSON, and refuses bad values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from builder.spec import (
    BuildLimits,
    BuildSpec,
    Masker,
    SpecError,
    StorageCredentials,
    log_stream,
    output_prefix,
)

SHA = "1a2b3c4d" * 5


def full_spec() -> BuildSpec:
    return BuildSpec(
        deployment_id="dpl-1",
        project_id=42,
        git_url="https://github.com/octo/site.git",
        sha=SHA,
        storage_url="s3://bucket/prefix",
        git_ref="main",
        token="ghs_token",
        root_directory="apps/web",
        install_command="pnpm install",
        build_command="pnpm build",
        output_directory="out",
        env={"API_KEY": "secret", "EMPTY": ""},
        storage_endpoint_url="http://127.0.0.1:9000",
        storage_credentials=StorageCredentials(
            "ASIAEXAMPLE", "secretAccessKeyValue", "sessionTokenValue", "2026-12-02T16:00:00Z"
        ),
        timeout=60,
        limits=BuildLimits(cpu_seconds=60, memory_mb=512, processes=64, max_log_mb=2),
        target="production",
        branch="main",
        from_fork=True,
        previous_sha="9f" * 20,
        env_scopes={"API_KEY": "production", "EMPTY": "branch:main"},
        production_branch="main",
        base_branch="release/2.x",
        clear_cache=True,
        cache_generation="1764772800123456",
    )


@pytest.mark.parametrize(
    "spec",
    [
        full_spec(),
        BuildSpec(
            deployment_id="d", project_id=1, git_url="file:///r", sha=SHA, storage_url="file:///s"
        ),
    ],
    ids=["every field", "only required fields"],
)
def test_spec_round_trips_through_json(spec: BuildSpec) -> None:
    raw = json.loads(json.dumps(spec.to_json()))

    assert BuildSpec.from_json(raw) == spec


def test_unset_optional_fields_are_left_out_of_the_json() -> None:
    raw = BuildSpec(
        deployment_id="d", project_id=1, git_url="file:///r", sha=SHA, storage_url="file:///s"
    ).to_json()

    assert "token" not in raw
    assert "root_directory" not in raw
    assert "storage_credentials" not in raw
    assert raw["limits"] == BuildLimits().to_json()


def test_secrets_stay_out_of_the_repr() -> None:
    shown = repr(full_spec())
    for secret in ("ghs_token", "secret", "secretAccessKeyValue", "sessionTokenValue"):
        assert secret not in shown


def test_the_masker_hides_storage_credentials_and_the_bootstrap_token() -> None:
    masker = Masker.for_spec(full_spec(), bootstrap="dpl-1.bootstrapSecret")
    text = "secretAccessKeyValue sessionTokenValue dpl-1.bootstrapSecret ghs_token secret"

    assert masker.mask(text) == "*** *** *** *** ***"


def test_derived_names() -> None:
    spec = full_spec()

    assert spec.output_prefix == output_prefix(42, "dpl-1") == "__outputs/42/dpl-1/"
    assert spec.log_stream == log_stream("dpl-1") == "scalemesh:logs:dpl-1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha": "main"}, "40 hex"),
        ({"git_url": "https://user:pw@github.com/o/r"}, "credentials"),
        ({"project_id": "seven"}, "not a number"),
        ({"timeout": "soon"}, "not a number"),
        ({"timeout": True}, "not a number"),
        ({"env": "{not json"}, "object of strings"),
        ({"env": {"A": 1}}, "object of strings"),
        ({"deployment_id": ""}, "deployment_id is not set"),
        ({"git_ref": 7}, "git_ref must be a string"),
        ({"limits": []}, "limits must be an object"),
        ({"limits": {"memory_mb": 0}}, "limits.memory_mb must be a whole number above 0"),
        ({"limits": {"processes": True}}, "limits.processes"),
        ({"storage_credentials": {"access_key_id": "A"}}, "three credential strings"),
        ({"env_scopes": {"A": 1}}, "env_scopes must be a JSON object of strings"),
        ({"env_scopes": []}, "env_scopes must be a JSON object of strings"),
        ({"from_fork": "yes"}, "from_fork must be true or false"),
        ({"previous_sha": "HEAD"}, "previous_sha must be 40 hex characters"),
        ({"base_branch": 7}, "base_branch must be a string"),
        ({"base_branch": None}, "base_branch must be a string"),
        # It names a folder of the project's build caches.
        ({"cache_generation": "../1"}, "cache_generation must be digits"),
        ({"cache_generation": "\uff11\uff12"}, "cache_generation must be digits"),
        ({"cache_generation": 1764772800}, "cache_generation must be a string"),
    ],
)
def test_bad_values_name_the_problem(change: dict[str, Any], message: str) -> None:
    raw = full_spec().to_json() | change

    with pytest.raises(SpecError, match=message):
        BuildSpec.from_json(raw)


@pytest.mark.parametrize("raw", [None, [], "spec"])
def test_a_spec_must_be_an_object(raw: object) -> None:
    with pytest.raises(SpecError, match="JSON object"):
        BuildSpec.from_json(raw)
