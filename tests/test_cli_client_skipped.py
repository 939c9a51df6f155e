"""`scalemesh deploy --follow` on a build the project's rules skip: it says why and exits 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import cli_client
from tests.support.cli_client import Account, cli
from tests.support.git import git, head

live = cli_client.live
config = cli_client.config
account = cli_client.account


def test_a_skipped_deploy_followed_says_why_and_succeeds(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "mono"
    (repo / "web").mkdir(parents=True)
    (repo / "web" / "index.html").write_text("<p>web")
    (repo / "README.md").write_text("a monorepo\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "site")
    first = head(repo)
    code, out, err = cli(
        capsys, "project", "create", "mono", "--repo", f"file://{repo}", "--root-dir", "web"
    )
    assert code == 0, err
    slug = out.split()[1].rstrip(":")
    code, out, err = cli(capsys, "deploy", slug, "--follow")
    assert code == 0, err
    assert out.splitlines()[-3].startswith("Ready: http://")

    (repo / "README.md").write_text("a monorepo, documented\n")
    git(repo, "commit", "-qam", "docs only")
    code, out, err = cli(capsys, "deploy", slug, "--follow")

    assert code == 0, err
    why = f"no file under web/ changed since {first[:7]} (1 file(s) changed elsewhere)"
    assert out.splitlines()[-2:] == [
        f"── deployment skipped: {why} ──",
        f"Skipped: {why} (nothing was deployed)",
    ]
