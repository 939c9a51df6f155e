"""Real builds with real toolchains: a Vite + React site through npm, pnpm and yarn (corepack)
and bun, and a site whose .nvmrc asks for Node 22, each in the sandbox; builds cannot write the
toolchain cache.

They reach the npm registry (the builder for Node and bun, the sandbox through its egress proxy
for packages, pnpm and yarn). The toolchain cache is shared (`tests.support.toolchains`).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from builder.confine import RunAs
from builder.spec import BuildLimits
from tests.support.builder import deployed, make_repo, make_spec, run
from tests.support.proxy_site import get, uploaded
from tests.support.sites import NPM_OFFLINE
from tests.support.toolchains import sandboxed, shared_cache, vite_react

NOBODY = 65534


def assert_vite_react_deployed(tmp_path: Path) -> None:
    """Uploaded, and served by the proxy's own code: the page, and the script it loads."""

    async def answers() -> tuple[str, str]:
        site = await uploaded(deployed(tmp_path))
        page = await get(site, "/")
        assert page.status == 200
        html = bytes(page.body).decode()
        [script] = re.findall(r'src="(/assets/index-[^"]+\.js)"', html)
        code = await get(site, script)
        assert code.status == 200
        return html, bytes(code.body).decode()

    html, code = asyncio.run(answers())
    assert '<div id="root">' in html
    assert "Hello from Vite and React" in code


@pytest.mark.parametrize(
    ("manager", "install", "chosen"),
    [
        ("npm", "Running npm ci", r"Node 20\.\d+\.\d+ \(the builder's default\)"),
        ("pnpm", "Running corepack pnpm install --frozen-lockfile", r"Node 20\."),
        ("yarn", "Running corepack yarn install --immutable", r"Node 20\."),
        ("bun", "Running bun install --frozen-lockfile", r"bun 1\.4\.5 \(packageManager in"),
    ],
)
def test_a_vite_react_site_builds_with_each_package_manager(
    tmp_path: Path, manager: str, install: str, chosen: str
) -> None:
    ok, sink = sandboxed(vite_react(tmp_path, manager))

    assert ok, sink.events[-1]
    lines = sink.lines()
    assert install in lines
    assert any(re.match(chosen, line) for line in sink.lines("install"))
    assert_vite_react_deployed(tmp_path)


def test_an_nvmrc_asking_for_node_22_gets_node_22(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path / "repo", "npm", {".nvmrc": "22\n"})
    build = "sh -c 'node --version && npm run build'"
    spec = make_spec(repo, sha, tmp_path / "storage", env=NPM_OFFLINE, build_command=build)

    ok, sink = sandboxed(spec)

    assert ok, sink.events[-1]
    chosen = [line for line in sink.lines("install") if line.startswith("Node ")]
    assert len(chosen) == 1
    assert re.fullmatch(r"Node 22\.\d+\.\d+ from \.nvmrc \(22\)", chosen[0])
    assert chosen[0].removeprefix("Node ").split()[0] == sink.lines("build")[1].removeprefix("v")
    assert (deployed(tmp_path) / "index.html").is_file()


def test_node_version_in_scalemesh_json_wins_over_nvmrc(tmp_path: Path) -> None:
    files = {".nvmrc": "20\n", "scalemesh.json": '{"nodeVersion": "22"}'}
    repo, sha = make_repo(tmp_path / "repo", "npm", files)
    build = "sh -c 'node --version && npm run build'"
    spec = make_spec(repo, sha, tmp_path / "storage", env=NPM_OFFLINE, build_command=build)

    ok, sink = sandboxed(spec)

    assert ok, sink.events[-1]
    chosen = next(line for line in sink.lines("install") if line.startswith("Node "))
    assert re.fullmatch(r"Node 22\.\d+\.\d+ from scalemesh\.json nodeVersion \(22\)", chosen)
    assert sink.lines("build")[1].startswith("v22.")


PLANT = (
    'sh -c \'bin=$(dirname "$(command -v node)"); node --version; '
    'touch "$bin/planted" || echo "the cache is read-only"; '
    'cp "$bin/node" /tmp/node; echo "#!/bin/sh" > "$bin/node" || echo "node is kept"; '
    "node build.js'"
)


@pytest.mark.parametrize("confinement", ["sandbox", "another user"])
def test_a_build_cannot_write_into_the_toolchain_cache(tmp_path: Path, confinement: str) -> None:
    cache = shared_cache()
    repo, sha = make_repo(tmp_path / "repo", "npm", {".nvmrc": "22\n"})
    spec = make_spec(repo, sha, tmp_path / "storage", env=NPM_OFFLINE, build_command=PLANT)

    if confinement == "sandbox":
        ok, sink = sandboxed(spec, cache)
    else:  # the builder image: root's cache, the build as an unprivileged user
        ok, sink = run(spec, confinement=RunAs(NOBODY, NOBODY, BuildLimits()), toolchains=cache)

    assert ok, sink.events[-1]
    lines = sink.lines("build")
    assert "the cache is read-only" in lines
    assert "node is kept" in lines
    assert not list(cache.glob("node/*/bin/planted"))
    node = next(cache.glob("node/22.*/bin/node"))
    assert node.stat().st_size > 1 << 20
