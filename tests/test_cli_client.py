"""The client commands against a live API: help, projects, env vars, deploy, logs, rollback.

The builds are real local builds; one API serves the module (each test signs up its own account).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from app.cli import main
from app.client import api
from tests.support import cli_client
from tests.support.cli_client import (
    COMMAND_TIMEOUT_S,
    FAILING_BUILD,
    SCALEMESH,
    WAIT_S,
    Account,
    cli,
    create,
    make_repo,
    subprocess_env,
)

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
live = cli_client.live
config = cli_client.config
account = cli_client.account


# --- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["login"],
        ["projects"],
        ["project"],
        ["project", "create"],
        ["project", "show"],
        ["project", "set"],
        ["deploy"],
        ["logs"],
        ["rollback"],
        ["unpin"],
        ["env"],
        ["env", "set"],
        ["env", "unset"],
        ["env", "list"],
    ],
    ids=" ".join,
)
def test_every_client_command_has_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: scalemesh {' '.join(command)} ")
    assert out.split("\n\n")[1].strip()


# --- projects and env vars --------------------------------------------------------------------


def test_projects_are_created_listed_and_their_env_managed(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "projects")
    assert (code, out) == (0, "")
    assert "No projects yet" in err

    repo = make_repo(tmp_path / "site")
    code, out, _ = cli(
        capsys,
        *("project", "create", "My Site", "--repo", f"file://{repo}", "--branch", "main"),
        *("--root-dir", "web", "--install-command", "true", "--build-command", "make site"),
        *("--output-dir", "public"),
    )
    assert code == 0
    assert out == "Created my-site: production at http://my-site.localhost:8080\n"
    project = account.get("/projects/my-site")
    assert project["repo"] == f"file://{repo}"
    assert (project["root_directory"], project["output_directory"]) == ("web", "public")
    assert (project["install_command"], project["build_command"]) == ("true", "make site")
    cli(capsys, "project", "create", "Blog", "--repo", "octocat/hello-world")

    code, out, _ = cli(capsys, "projects")
    assert code == 0
    assert out.splitlines() == [
        "SLUG     PRODUCTION URL                 REPO",
        "blog     http://blog.localhost:8080     octocat/hello-world",
        f"my-site  http://my-site.localhost:8080  file://{repo}",
    ]

    code, out, _ = cli(capsys, "env", "set", "my-site", "API_KEY=s3cr3t=x", "MODE=", "OLD=1")
    assert (code, out) == (
        0,
        "Set API_KEY, MODE, OLD on my-site for production, preview; "
        "the next deployment uses the change.\n",
    )
    code, out, _ = cli(capsys, "env", "unset", "my-site", "OLD")
    assert (code, out) == (
        0,
        "Unset OLD from every scope on my-site; the next deployment uses the change.\n",
    )
    code, out, _ = cli(
        capsys, "env", "set", "my-site", "API_URL=https://staging", "--scope", "preview",
        "--branch", "staging", "--scope", "branch:next",
    )  # fmt: skip
    assert (code, out) == (
        0,
        "Set API_URL on my-site for preview, branch:next, branch:staging; "
        "the next deployment uses the change.\n",
    )
    code, out, _ = cli(capsys, "env", "unset", "my-site", "API_URL", "--branch", "next")
    assert (code, out) == (
        0,
        "Unset API_URL from branch:next on my-site; the next deployment uses the change.\n",
    )
    code, out, _ = cli(capsys, "env", "list", "my-site")
    assert (code, out) == (
        0,
        "NAME     SCOPES\n"
        "API_KEY  production, preview\n"
        "API_URL  preview, branch:staging\n"
        "MODE     production, preview\n",
    )
    assert account.get("/projects/my-site")["env"] == ["API_KEY", "API_URL", "MODE"]

    code, out, err = cli(capsys, "env", "list", "blog")
    assert (code, out, err) == (0, "", "blog has no env vars\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["env", "list", "nope"], "You have no project 'nope'."),
        (["env", "set", "nope", "A=1"], "You have no project 'nope'."),
        (["rollback", "nope"], "You have no project 'nope'."),
        (["deploy", "nope"], "You have no project 'nope'."),
        (["env", "set", "nope", "A"], "'A' is not NAME=VALUE"),
        (["logs", "nope"], "There is no deployment 'nope'."),
        (["logs", "nope", "-f"], "you have no deployment 'nope'"),
        (["project", "create", "x", "--repo", "http://example.com/r"], "plain http:// git URLs"),
    ],
)
def test_mistakes_get_one_line_from_the_api(
    account: Account, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = cli(capsys, *args)

    assert code == 1
    assert out == ""
    assert err.startswith("scalemesh: ")
    assert message in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "A=1", "--scope", "prod"], "'prod' is not an env var scope: use production"),
        (["set", "A=1", "--scope", "branch:"], "'' is not a valid branch name"),
        (["set", "A=1", "--branch", "a..b"], "'a..b' is not a valid branch name"),
        (["unset", "NONE"], "has no env var NONE."),
        (["unset", "A", "--scope", "production"], "has no env var A in production."),
    ],
)
def test_bad_env_scopes_and_missing_names_are_refused(
    account: Account, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    slug = f"env-{account.email.partition('@')[0]}"  # the API outlives one test
    cli(capsys, "project", "create", slug, "--repo", "octocat/hello-world")
    cli(capsys, "env", "set", slug, "A=1", "--scope", "preview")

    code, out, err = cli(capsys, "env", args[0], slug, *args[1:])

    assert (code, out) == (1, "")
    assert message in err
    assert account.get(f"/projects/{slug}")["env_scopes"] == {"A": ["preview"]}


# --- deploy, logs, rollback: real builds ----------------------------------------------------------


def test_deploy_follow_logs_and_rollback(
    account: Account,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = make_repo(tmp_path / "site")
    slug = create(capsys, "site", repo)
    other = create(capsys, "other", make_repo(tmp_path / "other"))

    # From inside the repository, with no project named: the one that builds it.
    monkeypatch.chdir(repo)
    code, out, err = cli(capsys, "deploy", "--follow")

    assert code == 0, err
    lines = out.splitlines()
    first = lines[0].split()[-1]
    assert lines[0].startswith(f"Deploying {slug} (main @ ")
    url = lines[1].removeprefix("URL  ")
    assert url.startswith(f"http://{slug}-")
    assert lines[2] == f"Log  http://localhost:8000/deployments/{first}"
    assert "── build ──" in lines
    assert any(line.endswith("] built the site") and line.startswith("[") for line in lines)
    assert lines[-4:] == [
        f"── deployment ready: {url} ──",
        f"Ready: {url}",
        f"  also http://{slug}.localhost:8080",
        f"  also http://{slug}-git-main.localhost:8080",
    ]

    # One that never finished (it cannot be rolled back to), then a second one, queued, then
    # followed with `logs -f`.
    code, out, _ = cli(capsys, "deploy", slug)
    assert code == 0
    cancelled = out.splitlines()[0].split()[-1]
    assert account.post(f"/deployments/{cancelled}/cancel").status_code == 200
    code, out, _ = cli(capsys, "deploy", slug, "--ref", "main")
    assert code == 0
    second = out.splitlines()[0].split()[-1]
    code, out, _ = cli(capsys, "logs", second, "-f")
    assert code == 0
    assert "] built the site" in out
    assert out.splitlines()[-3].startswith("Ready: http://site-")
    code, out, _ = cli(capsys, "logs", second)
    assert code == 0
    assert "── build: ok in " in out
    assert out.splitlines()[-1].startswith("── deployment ready: http://site-")

    def production() -> str:
        deployments = account.get(f"/projects/{slug}/deployments")
        serving = [d["id"] for d in deployments if f"http://{slug}.localhost:8080" in d["aliases"]]
        assert len(serving) == 1
        return str(serving[0])

    assert production() == second

    # Back to the one before, one page of history at a time.
    monkeypatch.setattr(api, "PAGE", 1)
    code, out, _ = cli(capsys, "rollback", slug)
    assert code == 0
    rolled, pinned = out.splitlines()
    assert rolled.startswith(f"Production of {slug} now serves {first} (main @ ")
    assert rolled.endswith(f"): http://{slug}.localhost:8080")
    assert pinned.startswith(f"{slug}: production is pinned to {first} since ")
    assert pinned.endswith(
        f" by {account.email}; pushes build but do not go live until: scalemesh unpin {slug}"
    )
    assert production() == first
    code, out, _ = cli(capsys, "projects")
    assert code == 0
    assert out.splitlines()[-1] == pinned

    code, _, err = cli(capsys, "rollback", slug)
    assert code == 1
    assert err == (
        f"scalemesh: no ready deployment of {slug} is older than the one in production ({first})\n"
    )

    code, out, _ = cli(capsys, "rollback", slug, second)  # the newest: production unpinned
    assert code == 0
    assert len(out.splitlines()) == 1
    assert production() == second
    assert account.get(f"/projects/{slug}")["production_pin"] is None

    assert cli(capsys, "rollback", slug)[0] == 0
    code, out, _ = cli(capsys, "unpin", slug)
    assert code == 0
    assert out.startswith(f"Production of {slug} is unpinned and serves {second} (main @ ")
    assert out.endswith("); pushes go live again\n")
    assert production() == second
    code, out, _ = cli(capsys, "unpin", other)
    assert (code, out) == (
        0,
        f"Production of {other} is unpinned; no production deployment is ready yet\n",
    )

    code, _, err = cli(capsys, "rollback", other, second)
    assert code == 1
    assert err == f"scalemesh: deployment {second} belongs to {slug}, not {other}\n"
    code, _, err = cli(capsys, "rollback", other)
    assert code == 1
    assert err == f"scalemesh: production of {other} serves no deployment yet; deploy it first\n"


def test_a_failing_build_followed_on_a_terminal_exits_non_zero(
    account: Account, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = create(capsys, "broken", make_repo(tmp_path / "broken"), FAILING_BUILD)
    leader, follower = pty.openpty()
    errors = tmp_path / "stderr"
    try:
        with errors.open("wb") as stderr_file:
            process = subprocess.Popen(
                [str(SCALEMESH), "deploy", "--follow"],
                stdin=subprocess.DEVNULL,
                stdout=follower,
                stderr=stderr_file,
                cwd=tmp_path,  # not a git repository: the only project is chosen
                env=subprocess_env(tmp_path, SCALEMESH_CONFIG=str(config)),
            )
        os.close(follower)
        shown = read_terminal(leader, process)
    finally:
        os.close(leader)
    stderr = errors.read_text()

    assert process.returncode == 1
    assert stderr.startswith("scalemesh: deployment failed: ")
    assert "exited with code 3" in stderr
    assert f"Deploying {slug} (main @ " in shown
    assert "] about to fail" in shown
    assert "\r\x1b[K" in shown  # the live step line is redrawn in place
    assert "[4/5] build  0:" in shown
    assert "── build: failed in " in shown
    assert shown.endswith("\r\x1b[K")  # and cleared at the end


def read_terminal(leader: int, process: subprocess.Popen[bytes]) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the command closed its terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=WAIT_S)
    return b"".join(chunks).decode().replace("\r\n", "\n")
