"""The repository the topology test pushes: each commit says what its site shows and how long
its build talks.

`message.txt` becomes the site's `index.html`, so the proxy's answer tells which deployment it
serves; `ticks.txt` is how many numbered lines the build prints, a quarter second apart, so a
test can stop a replica or Redis in the middle of a build and then count every line. npm runs
offline, with no dependency to fetch.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.git import git, head
from tests.support.sites import make_site

TICK_S = 0.25

BUILD_JS = f"""
const fs = require("fs");
const ticks = Number(fs.readFileSync("ticks.txt", "utf8"));
const message = fs.readFileSync("message.txt", "utf8").trim();
let tick = 0;
function step() {{
  if (tick < ticks) {{
    console.log(`tick ${{tick}} of ${{ticks}}`);
    tick += 1;
    setTimeout(step, {int(TICK_S * 1000)});
    return;
  }}
  fs.mkdirSync("dist", {{ recursive: true }});
  fs.writeFileSync("dist/index.html", `<!doctype html><h1>${{message}}</h1>`);
  fs.writeFileSync("dist/about.html", `<h1>About ${{message}}</h1>`);
  console.log("done");
}}
step();
"""


def tick_lines(ticks: int) -> list[str]:
    """The lines a build of a commit with `ticks` prints, in order."""
    return [f"tick {tick} of {ticks}" for tick in range(ticks)]


class Site:
    """A git repository on `main`; `commit` adds a commit on a branch and returns its sha."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_site(path, build__js=BUILD_JS, message__txt="first\n", ticks__txt="0\n")

    @property
    def clone_url(self) -> str:
        return f"file://{self.path}"

    def commit(self, message: str, *, branch: str = "main", ticks: int = 0) -> str:
        """A commit on `branch` (made from `main` if new) whose site shows `message`."""
        existing = git(self.path, "branch", "--list", branch)
        git(self.path, "checkout", "-q", *([] if existing else ["-b"]), branch)
        (self.path / "message.txt").write_text(message + "\n")
        (self.path / "ticks.txt").write_text(f"{ticks}\n")
        git(self.path, "commit", "-qam", f"{message} ({ticks} ticks)")
        sha = head(self.path)
        git(self.path, "checkout", "-q", "main")
        return sha
