"""`scalemesh deploy --clear-cache`: the build it asks for does not restore the build cache,
while a plain deploy looks for one, through a live API and a real local build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import cli_client
from tests.support.cli_client import Account, cli, create, make_repo

live = cli_client.live
config = cli_client.config
account = cli_client.account

NOT_RESTORED = "Build cache: not restored (redeploy without cache); a fresh one is saved"


def test_deploy_with_clear_cache_builds_without_restoring_the_cache(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = create(capsys, "cached", make_repo(tmp_path / "cached"))

    code, plain, err = cli(capsys, "deploy", slug, "--follow")
    assert code == 0, err
    code, cleared, err = cli(capsys, "deploy", slug, "--clear-cache", "--follow")
    assert code == 0, err

    assert NOT_RESTORED not in plain
    assert "Build cache: miss (none for branch 'main')" in plain
    assert NOT_RESTORED in cleared
    assert "Build cache: miss" not in cleared
    assert cleared.splitlines()[-3].startswith(f"Ready: http://{slug}-")
