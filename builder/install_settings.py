"""What besides the lockfile and package.json decides the tree an install makes: the package
managers' config files in the app, and the build's variables that set what gets installed.

`builder.build_cache` folds them into the lockfile key, so a node_modules comes back only to a
build that would install the very same tree: one restored under `NODE_ENV=production` (no
devDependencies) never stands in for a build without it, and a changed `.npmrc` reinstalls.
"""

from __future__ import annotations

from collections.abc import Mapping

CONFIG_FILES = (".npmrc",)
"""Read by npm, pnpm and yarn 1 in the directory they install in (`omit`, `legacy-peer-deps`,
`node-linker`, …)."""
NPM_PREFIX = "npm_config_"
FETCH_ONLY = frozenset(
    {
        "audit",
        "ca",
        "cache",
        "cafile",
        "color",
        "fetch_retries",
        "fetch_retry_factor",
        "fetch_retry_maxtimeout",
        "fetch_retry_mintimeout",
        "fetch_timeout",
        "foreground_scripts",
        "fund",
        "https_proxy",
        "loglevel",
        "logs_dir",
        "logs_max",
        "maxsockets",
        "noproxy",
        "offline",
        "prefer_offline",
        "prefer_online",
        "progress",
        "proxy",
        "registry",
        "strict_ssl",
        "timing",
        "update_notifier",
        "yes",
    }
)
"""npm settings (lower case, `_` for `-`) that change how packages are fetched or what is
printed, never which packages end up in node_modules: the lockfile pins every one of them."""
_CREDENTIALS = ("auth", "token", "pass", "cert", "key", "email", "username")
"""Parts of a setting's name that mark a credential, fetch-only too and never hashed."""


def tree_settings(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The variables of `env` that may change what an install puts in node_modules, sorted:
    `NODE_ENV` (production leaves devDependencies out) and every npm setting (any case) but
    the fetch-only ones and credentials, which are left out of the key by name and value."""
    found = [("NODE_ENV", env["NODE_ENV"])] if "NODE_ENV" in env else []
    for name, value in env.items():
        if not name.lower().startswith(NPM_PREFIX):
            continue
        setting = name[len(NPM_PREFIX) :].lower().replace("-", "_")
        # Per-registry (`//host/:…`) and per-scope (`@scope:registry`) settings are fetch-only.
        if setting in FETCH_ONLY or setting.startswith(("//", "@")):
            continue
        if any(part in setting for part in _CREDENTIALS):
            continue
        found.append((setting, value))
    return sorted(found)
