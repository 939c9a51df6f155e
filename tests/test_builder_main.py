"""`python -m builder` end to end: a real npm build from a real git repository, as a process."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from builder import __main__ as entry
from builder.confinement_choice import SANDBOX
from builder.errors import Stopped
from builder.spec import MANIFEST, STEPS, BuildSpec
from tests.support.builder import (
    DEPLOYMENT_ID,
    PROJECT_ID,
    make_repo,
    make_spec,
    npm_env,
    parse_events,
)
from tests.support.waiting import alive, gone

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120
API_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


UNCONFINED = {SANDBOX: json.dumps({"kind": "none"})}
"""These tests are about the builder; the sandbox has its own (tests/test_builder_sandbox.py)."""


def process_env() -> dict[str, str]:
    """The test's own environment (coverage hooks, fake AWS credentials), no confinement."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SCALEMESH_")}
    env["SCALEMESH_TEST_SECRET"] = "must not reach the build"
    return env | UNCONFINED


def spec_json(spec: BuildSpec) -> str:
    return json.dumps(spec.to_json())


def build(spec: BuildSpec) -> tuple[int, list[dict[str, Any]], str]:
    result = subprocess.run(
        [sys.executable, "-m", "builder"],
        cwd=ROOT,
        env=process_env(),
        input=spec_json(spec),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return result.returncode, parse_events(result.stdout), result.stderr


def npm_spec(tmp_path: Path, **env: str) -> BuildSpec:
    repo, sha = make_repo(tmp_path / "repo", "npm")
    return make_spec(
        repo,
        sha,
        tmp_path / "storage",
        git_ref="main",
        token="ghs_e2eTokenValue1234567890",
        env={**npm_env(tmp_path), "API_KEY": API_KEY, **env},
    )


def deployed(tmp_path: Path) -> Path:
    return tmp_path / "storage" / "__outputs" / str(PROJECT_ID) / DEPLOYMENT_ID


def step_events(events: list[dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    return [(e["step"], e["status"], e.get("ok")) for e in events if e["type"] == "step"]


def texts(events: list[dict[str, Any]], step: str) -> list[str]:
    return [e["text"] for e in events if e["type"] == "line" and e["step"] == step]


def test_an_npm_site_builds_and_deploys(tmp_path: Path) -> None:
    spec = npm_spec(tmp_path)

    code, events, stderr = build(spec)

    assert code == 0, stderr
    assert step_events(events) == [
        (step, status, ok) for step in STEPS for status, ok in (("start", None), ("end", True))
    ]
    assert events[-1]["type"] == "end"
    assert events[-1]["ok"] is True
    assert "Detected custom (npm): package.json, no known framework in it, package-lock.json" in (
        texts(events, "detect")
    )
    assert "Running npm ci" in texts(events, "install")
    assert "Running npm run build" in texts(events, "build")
    build_lines = [
        (e["stream"], e["text"]) for e in events if e["type"] == "line" and e["step"] == "build"
    ]
    assert ("stdout", "> node build.js") in build_lines  # npm's own output, streamed
    assert ("stdout", "built 4 files") in build_lines
    assert ("stderr", "a warning on stderr") in build_lines
    assert ("stdout", "leaked: []") in build_lines  # no SCALEMESH_* or AWS_* in the build
    assert ("stdout", "the api key is ***") in build_lines
    everything = json.dumps(events)
    assert API_KEY not in everything
    assert spec.token not in everything

    manifest = json.loads((deployed(tmp_path) / MANIFEST).read_text())
    files = manifest["files"]
    assert set(files) == {"index.html", "assets/app-1a2b3c4d.js", "data.json", "logo.png"}
    assert files["index.html"]["content_type"] == "text/html; charset=utf-8"
    assert files["index.html"]["cache_control"] == "public, max-age=0, must-revalidate"
    assert files["assets/app-1a2b3c4d.js"]["content_type"] == "text/javascript; charset=utf-8"
    assert files["assets/app-1a2b3c4d.js"]["cache_control"] == (
        "public, max-age=31536000, immutable"
    )
    assert files["assets/app-1a2b3c4d.js"]["encodings"] == ["br", "gzip"]
    assert files["data.json"]["content_type"] == "application/json; charset=utf-8"
    assert files["data.json"]["encodings"] == []
    assert files["logo.png"]["content_type"] == "image/png"
    assert manifest["output_directory"] == "dist"
    assert all(manifest["steps"][step] >= 0 for step in STEPS)
    for name in files:
        assert (deployed(tmp_path) / name).is_file()
    assert (deployed(tmp_path) / "assets/app-1a2b3c4d.js.br").is_file()


def test_a_failing_build_exits_1_and_uploads_nothing(tmp_path: Path) -> None:
    code, events, _ = build(npm_spec(tmp_path, FIXTURE_FAIL="1"))

    assert code == 1
    assert events[-1]["type"] == "end"
    assert events[-1]["ok"] is False
    assert events[-1]["error"] == "build failed: npm run build exited with code 1"
    assert ("build", "end", False) in step_events(events)
    assert not any(e.get("step") == "upload" for e in events)
    assert "the build broke" in texts(events, "build")
    assert not (tmp_path / "storage").exists()


def test_sigterm_stops_the_build_and_everything_it_started(tmp_path: Path) -> None:
    spec = npm_spec(tmp_path, FIXTURE_HANG="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "builder"],
        cwd=ROOT,
        env=process_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(spec_json(spec))
    process.stdin.close()
    assert process.stdout is not None
    events: list[dict[str, Any]] = []
    child = None
    give_up = time.monotonic() + TIMEOUT_S
    while child is None and time.monotonic() < give_up:
        events.append(json.loads(process.stdout.readline()))
        if events[-1].get("text", "").startswith("child pid "):
            child = int(events[-1]["text"].removeprefix("child pid "))
    assert child is not None
    assert alive(child)

    process.send_signal(signal.SIGTERM)
    events += parse_events(process.stdout.read())
    process.stdout.close()

    assert process.wait(timeout=30) == 1
    assert events[-1]["error"] == "build stopped: the build was cancelled"
    assert step_events(events)[-1] == ("build", "end", False)
    assert gone(child)


def test_a_bad_spec_exits_2(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "ab" * 20, tmp_path / "storage")

    result = subprocess.run(
        [sys.executable, "-m", "builder"],
        cwd=ROOT,
        env=process_env(),
        input=json.dumps(spec.to_json() | {"sha": "main"}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )

    assert result.returncode == 2
    assert "bad build spec: sha must be 40 hex characters" in result.stderr
    [end] = parse_events(result.stdout)
    assert end["type"] == "end"
    assert end["ok"] is False
    assert end["error"] == "bad build spec: sha must be 40 hex characters, not 'main'"


# --- in process, for the paths a subprocess makes awkward ---------------------------------


ENV = {"PATH": os.environ["PATH"], **UNCONFINED}


def static_spec(tmp_path: Path, **overrides: Any) -> io.StringIO:
    repo, sha = make_repo(tmp_path / "repo", "static")
    return io.StringIO(spec_json(make_spec(repo, sha, tmp_path / "storage", **overrides)))


def test_main_deploys_and_restores_the_signal_handler(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    stdout = io.StringIO()

    assert entry.main(ENV, stdout, static_spec(tmp_path)) == 0

    assert parse_events(stdout.getvalue())[-1] == {
        "type": "end",
        "ok": True,
        "ts": parse_events(stdout.getvalue())[-1]["ts"],
    }
    assert signal.getsignal(signal.SIGTERM) == before


def test_main_makes_the_toolchain_cache_builds_read(tmp_path: Path) -> None:
    cache = tmp_path / "data" / "toolchains"
    environ = {**ENV, entry.TOOLCHAINS: str(cache)}

    assert entry.main(environ, io.StringIO(), static_spec(tmp_path)) == 0
    assert cache.stat().st_mode & 0o777 == 0o755


def test_a_toolchain_cache_that_cannot_be_made_is_a_bad_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    environ = {**ENV, entry.TOOLCHAINS: str(tmp_path / "file" / "toolchains")}

    assert entry.main(environ, io.StringIO(), static_spec(tmp_path)) == 2
    assert (
        f"{entry.TOOLCHAINS} {tmp_path}/file/toolchains cannot be made" in capsys.readouterr().err
    )


def test_main_with_a_failing_build_exits_1(tmp_path: Path) -> None:
    stdout = io.StringIO()

    assert entry.main(ENV, stdout, static_spec(tmp_path, build_command="false")) == 1
    assert parse_events(stdout.getvalue())[-1]["error"] == "build failed: false exited with code 1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"storage_url": "ftp://host/dir"}, "storage URL must be"),
        ({"project_id": "7"}, "project_id is not a number"),
    ],
)
def test_main_refuses_a_bad_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], message: str
) -> None:
    stdout = io.StringIO()
    repo, sha = make_repo(tmp_path / "repo", "static")
    raw = make_spec(repo, sha, tmp_path / "storage").to_json() | change

    assert entry.main(ENV, stdout, io.StringIO(json.dumps(raw))) == 2
    assert message in capsys.readouterr().err
    assert message in parse_events(stdout.getvalue())[-1]["error"]


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("", "must be a JSON object"), ("{nope", "not JSON"), ("x" * (2 << 20), "larger than 1 MB")],
)
def test_main_refuses_a_spec_that_is_not_one(stdin: str, message: str) -> None:
    stdout = io.StringIO()

    assert entry.main(ENV, stdout, io.StringIO(stdin)) == entry.BAD_SPEC
    assert message in parse_events(stdout.getvalue())[-1]["error"]


@pytest.mark.parametrize(
    ("sandbox", "message"),
    [
        ("", "no confinement for the build's commands"),
        ("{nope", "is not JSON"),
        ('{"kind": "chroot"}', "names no known sandbox"),
        ("[]", "names no known sandbox"),
    ],
)
def test_main_refuses_to_build_unconfined_unless_told_to(
    tmp_path: Path, sandbox: str, message: str
) -> None:
    stdout = io.StringIO()
    env = {"PATH": os.environ["PATH"], SANDBOX: sandbox}

    assert entry.main(env, stdout, static_spec(tmp_path)) == entry.BAD_SPEC
    assert message in parse_events(stdout.getvalue())[-1]["error"]
    assert not (tmp_path / "storage").exists()


def test_main_exits_1_when_stdout_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("the runner went away")

    assert entry.main(ENV, Closed(), static_spec(tmp_path)) == 1
    assert "writing the log to stdout failed" in capsys.readouterr().err


def test_the_sigterm_handler_stops_once() -> None:
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(Stopped):
            entry._stop(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


def test_the_projects_commands_run_as_the_unprivileged_user(tmp_path: Path) -> None:
    """The builder image starts as root and hands the project's commands to another user."""
    tmp_path.chmod(0o755)
    repo, sha = make_repo(tmp_path / "repo", files={"index.html": "<h1>hi</h1>"})
    spec = make_spec(
        repo,
        sha,
        tmp_path / "storage",
        build_command="sh -c 'mkdir -p out && id -u > out/uid.txt && cp index.html out/'",
        output_directory="out",
    )
    env = process_env() | {entry.RUN_AS: "65534:65534"}
    result = subprocess.run(
        [sys.executable, "-m", "builder"],
        cwd=ROOT,
        env=env,
        input=spec_json(spec),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if os.geteuid() != 0:
        assert result.returncode == 1  # only root can hand commands to another user
        return
    assert result.returncode == 0, result.stderr
    assert (deployed(tmp_path) / "uid.txt").read_text().strip() == "65534"


@pytest.mark.parametrize("raw", ["0:0", "1000", "builder:builder", "1000:0", ":"])
def test_a_bad_run_as_is_a_bad_spec(tmp_path: Path, raw: str) -> None:
    repo, sha = make_repo(tmp_path / "repo", files={"index.html": "hi"})
    spec = make_spec(repo, sha, tmp_path / "storage")
    stdout = io.StringIO()
    stdin = io.StringIO(spec_json(spec))
    assert entry.main({entry.RUN_AS: raw}, stdout, stdin) == entry.BAD_SPEC
    assert entry.RUN_AS in stdout.getvalue()
