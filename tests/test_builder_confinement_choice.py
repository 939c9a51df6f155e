"""What the builder confines a build's commands in, and what it says when it cannot."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from builder import __main__ as entry
from builder import confinement_choice
from builder.confine import ConfinementError, Launch, Unconfined
from builder.confinement_choice import BUILD_UIDS, SANDBOX, build_uid, confinement_for
from builder.egress import EgressProxy
from builder.remote import TOKEN_VARIABLE, RemoteError
from builder.sandbox import find_bwrap
from builder.spec import BuildLimits, SpecError
from tests.support.builder import CapturingSink, failure, make_repo, make_spec, run, static_spec

BUBBLEWRAP = {"kind": "bubblewrap", "bwrap": "/usr/bin/bwrap"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "bubblewrap"}, "bad bubblewrap setting"),
        ({**BUBBLEWRAP, "allow_networks": ["not a network"]}, "bad bubblewrap setting"),
        ({**BUBBLEWRAP, "readonly_paths": 7}, "bad bubblewrap setting"),
    ],
)
def test_a_bad_sandbox_setting_is_a_bad_spec(config: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        confinement_for(None, json.dumps(config), BuildLimits())


def test_as_root_each_builder_has_a_host_uid_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert build_uid(4242) == BUILD_UIDS + 4242
    assert build_uid() == BUILD_UIDS + os.getpid()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert build_uid() is None  # not root: the sandbox runs as the builder's own user


def test_a_host_uid_still_in_use_is_not_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confinement_choice, "processes_of", lambda uid: {12345})
    config = json.dumps({"kind": "bubblewrap", "bwrap": str(find_bwrap())})
    spec = static_spec(tmp_path, build_command="true", output_directory=".")

    ok, sink = run(spec, confine=confinement_for(None, config, spec.limits))

    assert not ok
    assert failure(sink).startswith("the build could not be confined: host uid ")
    assert failure(sink).endswith("still has processes running")


def test_a_sandbox_that_cannot_be_made_closes_its_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxies: list[EgressProxy] = []

    class Kept(EgressProxy):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            proxies.append(self)

    def refuse(*args: object, **kwargs: object) -> None:
        raise ConfinementError("uid 1000001 cannot reach /somewhere")

    monkeypatch.setattr(confinement_choice, "EgressProxy", Kept)
    monkeypatch.setattr(confinement_choice, "Bubblewrap", refuse)
    config = json.dumps({"kind": "bubblewrap", "bwrap": str(find_bwrap())})

    with pytest.raises(ConfinementError, match="cannot reach"):
        confinement_for(None, config, BuildLimits())([(tmp_path, "/build/repo")], print)

    (proxy,) = proxies
    assert not proxy.directory.exists()


# --- the pipeline's words for what happened in the confinement ----------------------------


class Refusing(Unconfined):
    def launch(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Launch:
        raise ConfinementError("uid 1000001 cannot reach /data/builds: /data is mode 0700")


def test_a_command_the_sandbox_cannot_start_fails_the_build_clearly(tmp_path: Path) -> None:
    spec = static_spec(tmp_path, build_command="true", output_directory=".")

    ok, sink = run(spec, confinement=Refusing(spec.limits))

    assert not ok
    assert failure(sink) == (
        "build failed: true could not be started in its sandbox: "
        "uid 1000001 cannot reach /data/builds: /data is mode 0700"
    )


@pytest.mark.parametrize(
    ("script", "said"),
    [
        ("kill -XCPU $$", "was killed by SIGXCPU: it used its 1800 s of CPU time"),
        ("kill -XFSZ $$", "was killed by SIGXFSZ: it wrote a file past 100 MB"),
        ("exit 137", "was killed by SIGKILL (did it pass the memory limit, 4096 MB?"),
        ("kill -TERM $$", "was killed by SIGTERM"),
    ],
)
def test_a_command_killed_by_a_limit_says_which(tmp_path: Path, script: str, said: str) -> None:
    spec = static_spec(tmp_path, build_command=f"sh -c '{script}'", output_directory=".")

    ok, sink = run(spec)

    assert not ok
    assert said in failure(sink)
    if "SIGTERM" in said:  # no limit sends it: no hint
        assert failure(sink).endswith("was killed by SIGTERM")


# --- python -m builder on ECS: its spec and log through the API -------------------------


def remote_env() -> dict[str, str]:
    return {TOKEN_VARIABLE: "d.secret", "PATH": os.environ["PATH"]}


def test_on_ecs_the_spec_and_log_come_and_go_through_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, sha = make_repo(tmp_path / "repo", "static")
    spec = make_spec(repo, sha, tmp_path / "storage")
    sink = CapturingSink()
    monkeypatch.setattr(entry.remote, "open_remote", lambda environ: (spec, sink))
    env = remote_env() | {SANDBOX: json.dumps({"kind": "none"})}

    assert entry.main(env, io.StringIO()) == entry.OK

    assert sink.events[-1]["type"] == "end"
    assert sink.events[-1]["ok"] is True
    assert sink.closed


def test_on_ecs_a_refused_token_ends_the_builder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(environ: Mapping[str, str]) -> None:
        raise RemoteError("the API refused the build token (401)")

    monkeypatch.setattr(entry.remote, "open_remote", refused)

    assert entry.main(remote_env(), io.StringIO()) == entry.FAILED
    assert "refused the build token" in capsys.readouterr().err


def test_on_ecs_a_bad_spec_is_told_to_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, sha = make_repo(tmp_path / "repo", "static")
    sink = CapturingSink()
    monkeypatch.setattr(
        entry.remote,
        "open_remote",
        lambda environ: (make_spec(repo, sha, tmp_path / "storage"), sink),
    )
    stdout = io.StringIO()

    assert entry.main(remote_env(), stdout) == entry.BAD_SPEC  # no confinement named

    assert "no confinement" in sink.events[-1]["error"]
    assert stdout.getvalue() == ""


def test_a_bad_spec_that_cannot_be_told_ends_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Gone(CapturingSink):
        def emit(self, event: dict[str, Any]) -> None:
            from builder.logsink import LogSinkError

            raise LogSinkError("the build log passed 16 MB")

    repo, sha = make_repo(tmp_path / "repo", "static")
    gone = Gone()
    monkeypatch.setattr(
        entry.remote,
        "open_remote",
        lambda environ: (make_spec(repo, sha, tmp_path / "storage"), gone),
    )

    assert entry.main(remote_env(), io.StringIO()) == entry.FAILED
    assert "the build log passed 16 MB" in capsys.readouterr().err
