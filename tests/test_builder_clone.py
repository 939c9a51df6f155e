"""The builder's clone step: the token goes only through git's environment, never to disk or
the log; clones over HTTP; a missing commit, a broken or hanging git.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder import pipeline
from builder.confine import Unconfined, given
from builder.logsink import Masker, basic_auth
from builder.spec import BuildLimits
from builder.upload import LocalStorage
from tests.support.builder import (
    TOKEN,
    CapturingSink,
    failure,
    fake_git,
    make_repo,
    make_spec,
    run,
    static_spec,
    steps,
    unconfined_build,
)
from tests.support.git import GitHttp, git

MISSING_SHA = "0123456789abcdef" * 2 + "01234567"

UNCONFINED = Unconfined(BuildLimits())


def test_the_token_goes_only_through_gits_environment(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    path = fake_git(
        tmp_path,
        f'printf "%s\\n" "$*" >> {calls}\nenv >> {calls}\nexec "$REAL_GIT" "$@"',
    )
    spec = static_spec(tmp_path, token=TOKEN)
    sink = CapturingSink(Masker.for_spec(spec))
    build = unconfined_build(tmp_path, spec, sink, path=path)
    workdir = tmp_path / "work"

    build.clone()

    recorded = calls.read_text()
    argv_lines = [line for line in recorded.splitlines() if "=" not in line.split(" ", 1)[0]]
    assert argv_lines  # git really ran
    assert not any(TOKEN in line or basic_auth(TOKEN) in line for line in argv_lines)
    assert f"GIT_CONFIG_VALUE_0=Authorization: Basic {basic_auth(TOKEN)}" in recorded
    assert "GIT_TERMINAL_PROMPT=0" in recorded
    assert "SCALEMESH_" not in recorded
    config = (workdir / "repo" / ".git" / "config").read_text()
    assert TOKEN not in config
    assert basic_auth(TOKEN) not in config
    assert git(workdir / "repo", "remote", "get-url", "origin") == spec.git_url
    assert git(workdir / "repo", "rev-parse", "HEAD") == spec.sha
    assert TOKEN not in sink.buffer.getvalue()
    assert basic_auth(TOKEN) not in sink.buffer.getvalue()


@pytest.mark.parametrize("protocol_v2", [True, False], ids=["fetch by sha", "full fetch fallback"])
def test_clone_over_http_sends_the_token_as_basic_auth(tmp_path: Path, protocol_v2: bool) -> None:
    repo, sha = make_repo(tmp_path / "served" / "site.git", "static")
    # A newer commit on top, so the one we build is no branch's tip (not advertised).
    (repo / "later.txt").write_text("later")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "later")
    server = GitHttp(tmp_path / "served", TOKEN, protocol_v2=protocol_v2)
    with server.serve():
        spec = make_spec(
            repo, sha, tmp_path / "storage", git_url=f"{server.url}/site.git", token=TOKEN
        )
        ok, sink = run(spec)

    assert ok, sink.events[-1]
    assert f"Basic {basic_auth(TOKEN)}" in server.authorizations
    fallback = "The server would not send the commit alone; fetching all branches"
    assert (fallback in sink.lines("clone")) is not protocol_v2
    assert TOKEN not in sink.buffer.getvalue()
    assert basic_auth(TOKEN) not in sink.buffer.getvalue()


def test_a_clone_without_the_right_token_fails_naming_the_url_and_sha(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path / "served" / "site.git", "static")
    server = GitHttp(tmp_path / "served", TOKEN)
    with server.serve():
        url = f"{server.url}/site.git"
        ok, sink = run(make_spec(repo, sha, tmp_path / "storage", git_url=url, token="wrong-token"))

    assert not ok
    assert failure(sink) == f"clone failed: could not fetch {url} (commit {sha})"
    assert steps(sink) == [("clone", "start", None), ("clone", "end", False)]
    assert not (tmp_path / "storage").exists()


def test_a_missing_commit_fails_the_clone(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "repo", "static")

    ok, sink = run(make_spec(repo, MISSING_SHA, tmp_path / "storage"))

    assert not ok
    assert failure(sink) == f"clone failed: commit {MISSING_SHA} was not found in {repo.as_uri()}"
    assert f"Error: commit {MISSING_SHA} was not found in {repo.as_uri()}" in sink.lines("clone")


def test_a_broken_git_fails_the_clone(tmp_path: Path) -> None:
    spec = static_spec(tmp_path)
    sink = CapturingSink()
    storage = LocalStorage(tmp_path / "storage")

    assert not pipeline.run(
        spec, sink, storage, path=fake_git(tmp_path, "exit 5"), confine=given(UNCONFINED)
    )
    assert failure(sink) == f"clone failed: git init exited with code 5 for {spec.git_url}"

    sink = CapturingSink()
    assert not pipeline.run(
        spec, sink, storage, path=str(tmp_path / "nothing-here"), confine=given(UNCONFINED)
    )
    assert failure(sink) == "clone failed: cannot run git: No such file or directory"


def test_a_hanging_clone_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "CLONE_TIMEOUT", 1)
    spec = static_spec(tmp_path)
    sink = CapturingSink()

    assert not pipeline.run(
        spec,
        sink,
        LocalStorage(tmp_path / "storage"),
        path=fake_git(tmp_path, "exec sleep 30"),
        confine=given(UNCONFINED),
    )
    assert failure(sink) == f"clone failed: cloning {spec.git_url} timed out after 1 s"
