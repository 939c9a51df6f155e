"""A build's output to stage: a checkout with an output directory, a secret beside it."""

from __future__ import annotations

from pathlib import Path

from builder.spec import BuildLimits
from builder.staging import stage

SECRET = b"SECRET-KEY-CANARY-0c5e1f"


class Output:
    """A checkout with an output directory in it, a secret outside both, and a staging area."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.outside = tmp_path / "data"
        self.outside.mkdir()
        self.secret = self.outside / "secret_key"
        self.secret.write_bytes(SECRET)
        self.checkout = tmp_path / "repo"
        self.dist = self.checkout / "dist"
        self.dist.mkdir(parents=True)
        self.notes: list[str] = []
        self.runs = 0

    def write(self, files: dict[str, bytes | str]) -> None:
        for name, data in files.items():
            path = self.dist / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.encode() if isinstance(data, str) else data)

    def link(self, links: dict[str, str | Path]) -> None:
        for name, target in links.items():
            path = self.dist / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)

    def stage(self, output: str = "dist", limits: BuildLimits | None = None) -> dict[str, bytes]:
        """Published path -> the staged copy's content; every note lands in `self.notes`."""
        self.runs += 1
        self.notes.clear()
        area = self.tmp / f"staging-{self.runs}"
        files = stage(self.checkout, output, area, limits or BuildLimits(), self.notes.append)
        assert [path for path, _ in files] == sorted(path for path, _ in files)
        assert all(source.parent == area for _, source in files)
        return {path: source.read_bytes() for path, source in files}

    def staged_bytes(self) -> int:
        area = self.tmp / f"staging-{self.runs}"
        return sum(path.stat().st_size for path in area.iterdir())
