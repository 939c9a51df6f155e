"""The limits fire inside the real sandbox, through the whole pipeline, each with an error that
says which limit it was."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.confine import Confine
from builder.confinement_choice import confinement_for
from builder.sandbox import find_bwrap
from builder.spec import BuildLimits
from tests.support.builder import failure, run, static_spec


@pytest.fixture
def work_root() -> Iterator[Path]:
    """A work root the sandbox's own host uid can pass through (pytest's is 0700)."""
    with tempfile.TemporaryDirectory(prefix="scalemesh-limits-") as made:
        Path(made).chmod(0o711)
        yield Path(made)


def sandboxed(limits: BuildLimits) -> Confine:
    config = json.dumps({"kind": "bubblewrap", "bwrap": str(find_bwrap())})
    return confinement_for(None, config, limits)


def test_a_build_past_its_memory_is_killed_and_told_why(tmp_path: Path, work_root: Path) -> None:
    limits = BuildLimits(memory_mb=128)
    spec = static_spec(
        tmp_path,
        build_command="python3 -c \"x = bytearray(512 << 20); print('allocated')\"",
        output_directory=".",
        limits=limits,
    )

    ok, sink = run(spec, confine=sandboxed(limits), work_root=work_root)

    assert not ok
    error = failure(sink)
    assert "128 MB" in error
    assert "SCALEMESH_BUILD_MEMORY_MB" in error
    assert "allocated" not in sink.lines("build")


def test_a_fork_bomb_stops_at_the_process_limit(tmp_path: Path, work_root: Path) -> None:
    limits = BuildLimits(processes=32)
    bomb = (
        'python3 -c "import os, time\n'
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError as exc:\n"
        "    print('stopped after', n, exc.strerror); raise SystemExit(3)\""
    )
    spec = static_spec(tmp_path, build_command=bomb, output_directory=".", limits=limits)

    ok, sink = run(spec, confine=sandboxed(limits), work_root=work_root)

    assert not ok
    [said] = [line for line in sink.lines("build") if line.startswith("stopped after")]
    assert int(said.split()[2]) < 32
    assert "Resource temporarily unavailable" in said
    assert failure(sink).endswith("exited with code 3")


def test_an_output_past_its_size_fails_naming_the_file(tmp_path: Path, work_root: Path) -> None:
    limits = BuildLimits(max_file_mb=1, max_output_mb=1)
    spec = static_spec(
        tmp_path,
        build_command="sh -c 'mkdir -p out && head -c 700000 /dev/zero > out/a.bin "
        "&& head -c 700000 /dev/zero > out/b.bin'",
        output_directory="out",
        limits=limits,
    )

    ok, sink = run(spec, confine=sandboxed(limits), work_root=work_root)

    assert not ok
    assert "SCALEMESH_BUILD_MAX_OUTPUT_MB" in failure(sink)
    assert "out/b.bin" in failure(sink) or "out/a.bin" in failure(sink)
