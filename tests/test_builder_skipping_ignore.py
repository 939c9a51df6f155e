"""The ignoreCommand: run in the build's confinement after the clone, exit 0 skips, another code
builds, killed or timed out fails the build; the commits it compares under every name."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from builder import skipping
from builder.confine import ConfinementError, Launch, Unconfined
from builder.errors import BuildError
from builder.logsink import basic_auth
from builder.siteconfig.records import SiteConfig
from builder.spec import MANIFEST, SKIPPED
from tests.support.builder import TOKEN, deployed, make_repo, make_spec, run
from tests.support.git import git
from tests.support.skipping import decide, monorepo, prepared
from tests.support.toolchains import sandboxed

DOCS_ONLY = 'test "$SCALEMESH_PREVIOUS_SHA" = "$CACHED_COMMIT_REF" && git diff --quiet '
DOCS_ONLY += '"$SCALEMESH_PREVIOUS_SHA" HEAD -- docs/'


def test_an_ignore_command_exiting_0_skips(tmp_path: Path) -> None:
    config = SiteConfig(source="scalemesh.json", ignore_command=DOCS_ONLY)

    reason, sink = decide(tmp_path, config)

    assert reason == f"the ignoreCommand {DOCS_ONLY!r} exited with code 0"
    lines = sink.lines()
    assert f"Running {DOCS_ONLY} (ignoreCommand of scalemesh.json) to decide whether to build" in (
        lines
    )
    assert "The ignoreCommand exited with code 0: skipping this build" in lines


def test_an_ignore_command_exiting_1_builds(tmp_path: Path) -> None:
    config = SiteConfig(ignore_command="git diff --quiet $SCALEMESH_PREVIOUS_SHA HEAD -- apps/")

    reason, sink = decide(tmp_path, config)

    assert reason is None
    assert "The ignoreCommand exited with code 1: building" in sink.lines()


def test_the_ignore_command_sees_the_commits_under_every_name(tmp_path: Path) -> None:
    names = [
        "SCALEMESH_PREVIOUS_SHA", "SCALEMESH_SHA", "SCALEMESH_BRANCH", "SCALEMESH_TARGET",
        "VERCEL_GIT_PREVIOUS_SHA", "VERCEL_GIT_COMMIT_SHA", "VERCEL_GIT_COMMIT_REF", "VERCEL_ENV",
        "CACHED_COMMIT_REF", "COMMIT_REF", "BRANCH",
    ]  # fmt: skip
    shown = " ".join(f"{name}=${name}" for name in names)
    config = SiteConfig(ignore_command=f'echo "{shown} PWD=$PWD"; exit 1')

    _, sink = decide(tmp_path, config, root_directory="apps/a", target="production", branch="main")

    first = git(tmp_path / "repo", "rev-parse", "HEAD~1")
    second = git(tmp_path / "repo", "rev-parse", "HEAD")
    printed = next(line for line in sink.lines() if line.startswith("SCALEMESH_PREVIOUS_SHA="))
    assert printed == (
        f"SCALEMESH_PREVIOUS_SHA={first} SCALEMESH_SHA={second} SCALEMESH_BRANCH=main "
        f"SCALEMESH_TARGET=production VERCEL_GIT_PREVIOUS_SHA={first} "
        f"VERCEL_GIT_COMMIT_SHA={second} VERCEL_GIT_COMMIT_REF=main VERCEL_ENV=production "
        f"CACHED_COMMIT_REF={first} COMMIT_REF={second} BRANCH=main "
        f"PWD={tmp_path / 'work' / 'repo' / 'apps' / 'a'}"
    )


def test_the_ignore_command_sees_no_token_nor_anything_of_the_builders_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It is the repository's code (a fork's pull request's, too), run before the build.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "builder-aws-secret")
    monkeypatch.setenv("SCALEMESH_BOOTSTRAP_TOKEN", "builder-bootstrap")
    monkeypatch.setenv("BUILDER_ONLY", "builder-own")
    seen = tmp_path / "seen.env"
    config = SiteConfig(ignore_command=f"env > {seen}; exit 1")

    reason, _ = decide(tmp_path, config, token=TOKEN, env={"API_URL": "https://api.example"})

    assert reason is None
    text = seen.read_text()
    shown = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert TOKEN not in text
    assert basic_auth(TOKEN) not in text
    assert "builder-" not in text
    assert not [name for name in shown if name.startswith(("GIT_", "AWS_"))]
    assert sorted(name for name in shown if name.startswith("SCALEMESH_")) == [
        "SCALEMESH_BRANCH", "SCALEMESH_PREVIOUS_SHA", "SCALEMESH_SHA", "SCALEMESH_TARGET",
    ]  # fmt: skip
    assert shown["API_URL"] == "https://api.example"  # the project's own, as the build's


def test_without_a_previous_deployment_the_ignore_command_does_not_run(tmp_path: Path) -> None:
    reason, sink = decide(tmp_path, SiteConfig(ignore_command="exit 0"), previous_sha="")

    assert reason is None
    assert not any(line.startswith("Running exit 0") for line in sink.lines())


@pytest.mark.parametrize(
    ("command", "killed_by"),
    [("kill -9 $$", "SIGKILL"), ("exit 137", "SIGKILL"), ("kill -40 $$", "signal 40")],
)
def test_a_killed_ignore_command_fails_the_build(
    tmp_path: Path, command: str, killed_by: str
) -> None:
    with pytest.raises(BuildError) as raised:
        decide(tmp_path, SiteConfig(ignore_command=command))

    assert str(raised.value) == f"the ignoreCommand {command!r} was killed by {killed_by}"


def test_an_ignore_command_that_times_out_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(skipping, "IGNORE_TIMEOUT", 1)

    with pytest.raises(BuildError, match=r"^the ignoreCommand timed out after 1 s$"):
        decide(tmp_path, SiteConfig(ignore_command="sleep 30"))


def test_an_ignore_command_that_cannot_start_fails_the_build(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    repo, first, second = monorepo(tmp_path)
    spec = make_spec(repo, second, tmp_path / "storage", previous_sha=first)
    build, plan, _ = prepared(tmp_path, spec, SiteConfig(ignore_command="exit 0"))
    build.path = str(empty)  # no sh

    with pytest.raises(BuildError, match="sh"):
        skipping.skip_reason(build, plan)


class Unlaunchable(Unconfined):
    def launch(self, argv: Sequence[str], *, cwd: Path, env: Any) -> Launch:
        raise ConfinementError("no sandbox today")


def test_an_ignore_command_its_sandbox_refuses_fails_the_build(tmp_path: Path) -> None:
    repo, first, second = monorepo(tmp_path)
    spec = make_spec(repo, second, tmp_path / "storage", previous_sha=first)
    build, plan, _ = prepared(tmp_path, spec, SiteConfig(ignore_command="exit 0"))
    build.confinement = Unlaunchable(spec.limits)

    with pytest.raises(BuildError) as raised:
        skipping.skip_reason(build, plan)

    assert (
        str(raised.value) == "sh -c 'exit 0' could not be started in its sandbox: no sandbox today"
    )


class Unstoppable(Unconfined):
    def stop_all(self) -> None:
        raise ConfinementError("processes of user 1001 survived SIGKILL")


def test_an_ignore_command_whose_processes_survive_fails_the_build(tmp_path: Path) -> None:
    repo, first, second = monorepo(tmp_path)
    spec = make_spec(repo, second, tmp_path / "storage", previous_sha=first)
    build, plan, _ = prepared(tmp_path, spec, SiteConfig(ignore_command="exit 1"))
    build.confinement = Unstoppable(spec.limits)

    with pytest.raises(BuildError) as raised:
        skipping.skip_reason(build, plan)

    assert str(raised.value) == (
        "the ignoreCommand's processes could not all be stopped: "
        "processes of user 1001 survived SIGKILL"
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("scalemesh.json", '{"ignoreCommand": "%s"}'),
        ("vercel.json", '{"ignoreCommand": "%s"}'),
        ("netlify.toml", '[build]\nignore = "%s"\n'),
    ],
)
def test_each_config_files_ignore_command_is_run(tmp_path: Path, name: str, text: str) -> None:
    command = "git diff --quiet $CACHED_COMMIT_REF $COMMIT_REF -- apps/b"
    repo, first = make_repo(
        tmp_path / "repo",
        files={"index.html": "<p>root", "apps/b/b.txt": "b", name: text % command},
    )
    (repo / "apps" / "a").mkdir()
    (repo / "apps" / "a" / "a.txt").write_text("a")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "only a")
    spec = make_spec(repo, git(repo, "rev-parse", "HEAD"), tmp_path / "storage", previous_sha=first)

    ok, sink = run(spec)

    assert ok, sink.events[-1]
    why = f"the ignoreCommand {command!r} exited with code 0"
    assert json.loads((deployed(tmp_path) / SKIPPED).read_text()) == {"reason": why}
    assert not (deployed(tmp_path) / MANIFEST).exists()
    assert f"Running {command} (ignoreCommand of {name}) to decide whether to build" in (
        sink.lines("detect")
    )


def test_the_ignore_command_runs_in_the_sandbox_not_on_the_builders_machine(
    tmp_path: Path,
) -> None:
    # The repository's code, run before install and build: the same confinement as theirs.
    outside = tmp_path / "escaped"
    command = f"touch {outside}; exit 1"
    files: dict[str, str | bytes] = {"scalemesh.json": json.dumps({"ignoreCommand": command})}
    repo, first = make_repo(tmp_path / "repo", "static", files)
    (repo / "index.html").write_text("<p>changed")
    git(repo, "commit", "-qam", "change")
    spec = make_spec(repo, git(repo, "rev-parse", "HEAD"), tmp_path / "storage", previous_sha=first)

    ok, sink = sandboxed(spec)

    assert ok, sink.lines()
    assert "The ignoreCommand exited with code 1: building" in sink.lines()
    assert not outside.exists()
