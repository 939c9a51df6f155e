"""`scalemesh project create --preview-ttl-days`, `project show` and `project set`: the previews'
time to live printed and stored through a live API; a bad value changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import cli_client
from tests.support.cli_client import Account, cli, create, make_repo

live = cli_client.live
config = cli_client.config
account = cli_client.account


def test_create_show_and_set_the_preview_time_to_live(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "site")
    code, out, err = cli(
        capsys, "project", "create", "ttl", "--repo", f"file://{repo}", "--preview-ttl-days", "14"
    )
    assert code == 0, err
    slug = out.split()[1].rstrip(":")
    assert account.get(f"/projects/{slug}")["preview_ttl_days"] == 14

    code, shown, err = cli(capsys, "project", "show", slug)
    assert code == 0, err
    assert "preview TTL       14 days without a push" in shown
    assert f"project           {slug}" in shown

    code, out, err = cli(capsys, "project", "set", slug, "--preview-ttl-days", "3")
    assert (code, out) == (0, f"Preview TTL of {slug}: 3 days without a push\n"), err
    assert account.get(f"/projects/{slug}")["preview_ttl_days"] == 3

    code, out, err = cli(capsys, "project", "set", slug, "--preview-ttl-days", "none")
    assert code == 0, err
    assert "not set (the repository's previews.ttlDays, else previews stay)" in out
    assert account.get(f"/projects/{slug}")["preview_ttl_days"] is None
    code, shown, err = cli(capsys, "project", "show", slug)
    assert "preview TTL       not set" in shown


@pytest.mark.parametrize(("value", "said"), [("0", ">= 1"), ("3651", "<= 3650")])
def test_an_out_of_range_time_to_live_is_refused_and_changes_nothing(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, said: str
) -> None:
    slug = create(capsys, f"ttl range {value}", make_repo(tmp_path / "site"))
    assert cli(capsys, "project", "set", slug, "--preview-ttl-days", "30")[0] == 0

    code, out, err = cli(capsys, "project", "set", slug, "--preview-ttl-days", value)

    assert code == 1
    assert out == ""
    assert "preview_ttl_days" in err
    assert said in err
    assert account.get(f"/projects/{slug}")["preview_ttl_days"] == 30


def test_a_time_to_live_that_is_not_a_number_is_refused_before_asking(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = create(capsys, "ttl text", make_repo(tmp_path / "site"))

    with pytest.raises(SystemExit) as exited:
        cli(capsys, "project", "set", slug, "--preview-ttl-days", "two weeks")

    assert exited.value.code == 2
    assert "'two weeks' is not a whole number of days (1 to 3650) or none" in (
        capsys.readouterr().err
    )
    assert account.get(f"/projects/{slug}")["preview_ttl_days"] is None
