"""The build spec survives the trip through environment variables, and refuses bad values."""

from __future__ import annotations

import pytest

from builder.spec import PREFIX, BuildSpec, SpecError, log_stream, output_prefix

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
        log_sink="redis://127.0.0.1:6379/0",
        storage_endpoint_url="http://127.0.0.1:9000",
        timeout=60,
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
def test_spec_round_trips_through_env(spec: BuildSpec) -> None:
    env = spec.to_env()

    assert all(name.startswith(PREFIX) for name in env)
    assert BuildSpec.from_env(env) == spec


def test_unset_optional_fields_are_left_out_of_the_env() -> None:
    env = BuildSpec(
        deployment_id="d", project_id=1, git_url="file:///r", sha=SHA, storage_url="file:///s"
    ).to_env()

    assert f"{PREFIX}TOKEN" not in env
    assert f"{PREFIX}ROOT_DIRECTORY" not in env


def test_the_token_stays_out_of_the_repr() -> None:
    assert "ghs_token" not in repr(full_spec())
    assert "secret" not in repr(full_spec())


def test_derived_names() -> None:
    spec = full_spec()

    assert spec.output_prefix == output_prefix(42, "dpl-1") == "__outputs/42/dpl-1/"
    assert spec.log_stream == log_stream("dpl-1") == "scalemesh:logs:dpl-1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SHA": "main"}, "40 hex"),
        ({"GIT_URL": "https://user:pw@github.com/o/r"}, "credentials"),
        ({"PROJECT_ID": "seven"}, "not a number"),
        ({"TIMEOUT": "soon"}, "not a number"),
        ({"ENV": "{not json"}, "not JSON"),
        ({"ENV": '{"A": 1}'}, "object of strings"),
        ({"DEPLOYMENT_ID": ""}, "DEPLOYMENT_ID is not set"),
    ],
)
def test_bad_values_name_the_problem(change: dict[str, str], message: str) -> None:
    env = full_spec().to_env()
    env.update({PREFIX + name: value for name, value in change.items()})

    with pytest.raises(SpecError, match=message):
        BuildSpec.from_env(env)
