""".gitlab-ci.yml: valid for GitLab, and the same checks as `.ci/run`, then images and deploy.

The schema check runs offline against the GitLab CI schema vendored in check-jsonschema.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / ".gitlab-ci.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
STAGES = ["lint", "test", "build", "deploy"]


def pipeline() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(PIPELINE.read_text())
    return document


def jobs(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Jobs GitLab runs, each merged with the hidden job it `extends`."""
    reserved = {"stages", "workflow", "variables", "default", "include", "image", "services"}
    found = {}
    for name, job in document.items():
        if name in reserved or name.startswith("."):
            continue
        base = document.get(job.get("extends", ""), {})
        found[name] = {
            **base,
            **job,
            "variables": {**base.get("variables", {}), **job.get("variables", {})},
        }
    return found


def script(job: dict[str, Any]) -> list[str]:
    return [" ".join(line.split()) for line in job.get("script", [])]


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.gitlab-ci", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_pipeline_matches_gitlabs_schema() -> None:
    result = validate(PIPELINE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_pipeline(tmp_path: Path) -> None:
    broken = pipeline()
    broken["test"]["script"] = [{"make": "test"}]  # a mapping where GitLab needs a command
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(yaml.safe_dump(broken))

    result = validate(path)

    assert result.returncode == 1
    assert "test.script" in result.stdout


def test_stages_run_lint_test_build_deploy() -> None:
    document = pipeline()

    assert document["stages"] == STAGES
    used = {job["stage"] for job in jobs(document).values()}
    assert used == set(STAGES)


def test_test_job_runs_make_test_against_postgres_and_redis_services() -> None:
    job = jobs(pipeline())["test"]
    services = {service["alias"]: service["name"] for service in job["services"]}
    variables = job["variables"]
    # The same variables `.ci/run` exports for the suite.
    ci_run = (ROOT / ".ci" / "run").read_text()
    exported = set(re.findall(r"^export (SCALEMESH_TEST_\w+)=", ci_run, re.M))

    assert job["stage"] == "test"
    assert any(line.startswith("make test") for line in script(job))
    assert "COVERAGE_MIN=100" in " ".join(script(job))
    assert exported == {"SCALEMESH_TEST_POSTGRES_URL", "SCALEMESH_TEST_REDIS_URL"}
    assert exported <= set(variables)
    assert services["postgres"].startswith("postgres:")
    assert services["redis"].startswith("redis:")
    postgres = urlsplit(variables["SCALEMESH_TEST_POSTGRES_URL"])
    redis = urlsplit(variables["SCALEMESH_TEST_REDIS_URL"])
    assert (postgres.scheme, postgres.hostname, postgres.port) == ("postgresql", "postgres", 5432)
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
    # The postgres image creates the database the URL names, open to the suite.
    assert variables["POSTGRES_DB"] == postgres.path.lstrip("/")
    assert variables["POSTGRES_HOST_AUTH_METHOD"] == "trust"


def test_lint_job_runs_make_lint() -> None:
    assert script(jobs(pipeline())["lint"]) == ["make lint"]


def test_audit_job_runs_make_audit() -> None:
    job = jobs(pipeline())["audit"]

    assert job["stage"] == "lint"
    assert script(job) == ["make audit"]


def test_build_pushes_both_images_without_docker_in_docker() -> None:
    builds = {name: job for name, job in jobs(pipeline()).items() if job["stage"] == "build"}
    dockerfiles = set()
    destinations = set()

    for name, job in builds.items():
        assert "services" not in job, f"{name}: no docker:dind"
        assert "kaniko" in job["image"]["name"], name
        assert not job["image"]["name"].endswith(":latest")
        commands = " ".join(script(job))
        assert "/kaniko/executor" in commands
        assert "--no-push" not in commands
        assert '--destination "${IMAGE}:${CI_COMMIT_SHA}"' in commands
        dockerfiles.add(job["variables"]["DOCKERFILE"])
        destinations.add(job["variables"]["IMAGE"])
    assert dockerfiles == {"Dockerfile", "builder/Dockerfile"}
    assert len(destinations) == 2
    for dockerfile in dockerfiles:
        assert (ROOT / dockerfile).is_file()
    content = yaml.safe_dump(pipeline())  # comments aside, nowhere in the pipeline
    assert "privileged" not in content
    assert "dind" not in content


def test_deploy_applies_the_kustomization_by_hand_from_the_default_branch() -> None:
    job = jobs(pipeline())["deploy"]
    (rule,) = job["rules"]
    commands = script(job)

    assert rule == {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "when": "manual"}
    assert "kubectl apply -k deploy/k8s" in commands
    assert set(job["needs"]) == {
        name for name, other in jobs(pipeline()).items() if other["stage"] == "build"
    }
    # The image rewrite edits the one `images` entry of the kustomization.
    kustomization = (ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text()
    assert len(re.findall(r"^\s+newName:", kustomization, re.M)) == 1
    assert len(re.findall(r"^\s+newTag:", kustomization, re.M)) == 1
    rewrite = next(line for line in commands if line.startswith("sed "))
    assert "deploy/k8s/kustomization.yaml" in rewrite
    # Migrations finish before the rollout is waited on.
    apply = commands.index("kubectl apply -k deploy/k8s")
    assert "job/scalemesh-migrate" in commands[apply + 1]
