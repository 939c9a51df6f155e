"""`scalemesh login --token` at a terminal (the token typed at a hidden prompt), and an API that
cannot be reached to check the token."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.cli import main
from tests.support import cli_client
from tests.support.api import bearer
from tests.support.cli_client import Live, cli
from tests.support.ports import refused_port

live = cli_client.live
config = cli_client.config


class Terminal(io.StringIO):
    """Standard input that is a terminal, with nothing typed on it but at the prompt."""

    def isatty(self) -> bool:
        return True


def login_at_terminal(
    capsys: pytest.CaptureFixture[str], typed: Callable[[str], str], api: str
) -> tuple[int, str, str, list[str]]:
    """`scalemesh login --api API --token` with `typed` answering the hidden prompt; its exit
    code, stdout, stderr and the prompts shown."""
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return typed(prompt)

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", Terminal())
        patch.setattr("app.client.commands.getpass.getpass", getpass)
        code = main(["login", "--api", api, "--token"])
    out, err = capsys.readouterr()
    return code, out, err, prompts


def test_a_token_typed_at_the_prompt_is_checked_and_saved(
    live: Live, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = live.account()
    with live.http() as http:
        made = http.post("/tokens", json={"name": "ci"}, headers=bearer(account.token)).json()

    code, out, err, prompts = login_at_terminal(capsys, lambda _: f"  {made['token']} ", live.url)

    assert code == 0, err
    assert prompts == ["API token: "]
    assert f"Logged in to {live.url} as {account.email} with an API token" in out
    assert json.loads(config.read_text()) == {"api": live.url, "token": made["token"]}


def ctrl_d(_: str) -> str:
    raise EOFError


@pytest.mark.parametrize(
    ("typed", "err_expected"),
    [
        pytest.param(lambda _: "   ", "scalemesh: no API token given\n", id="blank"),
        pytest.param(ctrl_d, "\nscalemesh: no API token given\n", id="ctrl-d"),
    ],
)
def test_no_token_typed_at_the_prompt_saves_nothing(
    live: Live,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    typed: Callable[[str], str],
    err_expected: str,
) -> None:
    code, out, err, prompts = login_at_terminal(capsys, typed, live.url)

    assert (code, out, err) == (1, "", err_expected)
    assert prompts == ["API token: "]
    assert not config.exists()


def test_a_token_for_an_api_that_cannot_be_reached_says_so_and_saves_nothing(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}"
        code, _, err = cli(capsys, "login", "--api", url, "--token", stdin="smt_token\n")

    assert code == 1
    assert err.startswith(f"scalemesh: cannot reach the Scale Mesh API at {url} (")
    assert "does not accept this token" not in err
    assert not config.exists()
