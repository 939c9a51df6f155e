"""Sites for real builds: an npm project committed to a local git repository, built offline.

Nothing reaches a package registry: the sites have no dependencies and npm runs offline.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.git import git

BUILD_JS = """
const fs = require("fs");
fs.mkdirSync("dist/assets", { recursive: true });
console.log("building with", process.env.SECRET_TOKEN);
console.error("a warning on stderr");
fs.writeFileSync("dist/index.html", "<!doctype html><h1>Hello from Scale Mesh</h1>");
fs.writeFileSync("dist/about.html", "<h1>About</h1>");
fs.writeFileSync("dist/assets/app-1a2b3c4d.js", "console.log('hi');\\n".repeat(200));
fs.writeFileSync("dist/style.css", "body { color: red }");
console.log("done");
"""

# Offline npm: a private cache, no audit, no update check; set as the project's env vars.
NPM_OFFLINE = {
    "npm_config_offline": "true",
    "npm_config_audit": "false",
    "npm_config_fund": "false",
    "npm_config_update_notifier": "false",
}


def make_site(
    path: Path, build_script: str = "node build.js", *, npm_lock: bool = True, **files: str
) -> str:
    """An npm site at `path`, committed on `main`; its `file://` URL. `a__b` names file `a.b`."""
    path.mkdir()
    package: dict[str, object] = {"name": "site", "version": "1.0.0", "private": True}
    package["scripts"] = {"build": build_script}
    lock = {
        "name": "site",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {"": {"name": "site", "version": "1.0.0"}},
    }
    (path / "package.json").write_text(json.dumps(package))
    if npm_lock:
        (path / "package-lock.json").write_text(json.dumps(lock))
    (path / "build.js").write_text(BUILD_JS)
    for name, text in files.items():
        (path / name.replace("__", ".")).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-qm", "site")
    return f"file://{path}"
