"""`scalemesh.json`: read, checked field by field (errors name the field and its line) and
resolved for one build's target and branch. `scalemesh.schema.json` is the same rules as a
JSON Schema; a test holds the two to the same verdicts."""

from __future__ import annotations

import re
from collections.abc import Mapping

from builder.siteconfig.jsonlines import JsonSyntaxError, Located, loads
from builder.siteconfig.nodes import ConfigError, LineOf, Node, Step, root
from builder.siteconfig.records import Previews, SiteConfig
from builder.siteconfig.rules import vercel_rules

NAME = "scalemesh.json"
FIELDS = (
    "$schema",
    "buildCommand",
    "installCommand",
    "outputDirectory",
    "rootDirectory",
    "framework",
    "nodeVersion",
    "ignoreCommand",
    "watchPaths",
    "cache",
    "cleanUrls",
    "trailingSlash",
    "redirects",
    "rewrites",
    "headers",
    "env",
    "previews",
)
MAX_LIST = 256
"""Entries of `watchPaths` and of each `previews` glob list."""
MAX_TTL_DAYS = 3650
"""`previews.ttlDays` at most (ten years)."""
MAX_CACHE_PATHS = 32
_FRAMEWORK = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
RESERVED_PREFIXES = ("SCALEMESH_", "AWS_")
RESERVED_NAMES = frozenset({"CI", "HOME", "PATH"})
MAX_ENV_VALUE = 64 * 1024


def read(text: str, source: str, *, target: str, branch: str) -> SiteConfig:
    """The config `text` (the file at `source`) holds, for a `target` build of `branch`."""
    fields = document(text, source).fields(FIELDS, what=NAME)

    def text_of(name: str, most: int = 4096) -> str | None:
        return fields[name].optional_text(most=most) if name in fields else None

    def path_of(name: str) -> str | None:
        return relative_path(fields[name]) if name in fields else None

    if "$schema" in fields:
        fields["$schema"].text()
    framework = text_of("framework", 64)
    if framework is not None and not _FRAMEWORK.fullmatch(framework):
        fields["framework"].fail("must be a framework name: lower-case letters, digits, - or .")
    watch = fields["watchPaths"].items(most=MAX_LIST) if "watchPaths" in fields else []
    cached = fields["cache"].items(most=MAX_CACHE_PATHS) if "cache" in fields else []
    rules = vercel_rules(fields, source, strict=True)
    env, scopes = environment(fields["env"], target, branch) if "env" in fields else ({}, {})
    return SiteConfig(
        source=source,
        build_command=text_of("buildCommand"),
        install_command=text_of("installCommand"),
        output_directory=path_of("outputDirectory"),
        root_directory=path_of("rootDirectory"),
        framework=framework,
        node_version=text_of("nodeVersion", 64),
        ignore_command=text_of("ignoreCommand"),
        watch_paths=tuple(_relative(item, item.text()) for item in watch),
        cache=tuple(_inside(item, item.text()) for item in cached),
        clean_urls=rules.clean_urls if "cleanUrls" in fields else None,
        trailing_slash=rules.trailing_slash,
        rules=None if rules.empty() else rules.to_json(),
        rule_positions=rules.positions(),
        env=env,
        env_scopes=scopes,
        previews=previews(fields["previews"]) if "previews" in fields else Previews(),
        lines={name: node.line for name, node in fields.items() if node.line},
    )


def document(text: str, source: str) -> Node:
    """The root node of a JSON file; bad JSON is an error at its line."""
    try:
        located = loads(text)
    except JsonSyntaxError as exc:
        raise ConfigError(source, exc.line, f"is not valid JSON: {exc.message}") from None
    return root(located.value, source, located.line, _lines(located))


def _lines(located: Located) -> LineOf:
    def line_of(container: object, key: Step, steps: tuple[Step, ...]) -> int | None:
        return located.line_of(container, key)

    return line_of


def relative_path(node: Node) -> str | None:
    """A path inside the repository, or null; absolute paths are refused."""
    path = node.optional_text()
    return None if path is None else _relative(node, path)


def _relative(node: Node, path: str) -> str:
    if path.startswith("/"):
        node.fail("must be a path relative to the repository, not an absolute one")
    return path


def _inside(node: Node, path: str) -> str:
    """A path below the root directory: neither absolute nor with a `..` part."""
    if path.startswith("/") or ".." in path.split("/"):
        node.fail("must be a path inside the root directory: not absolute, no '..'")
    return path


def environment(node: Node, target: str, branch: str) -> tuple[dict[str, str], dict[str, str]]:
    """The `env` variables for this build, and the environment each came from.

    A production build gets `production`; a preview gets `preview`, then its branch's
    variables in `branches` over those. Every environment is checked, whichever is used.
    """
    fields = node.fields(("production", "preview", "branches"), what="env")
    sections = {
        name: variables(fields[name]) for name in ("production", "preview") if name in fields
    }
    branches: dict[str, dict[str, str]] = {}
    if "branches" in fields:
        for name, node_of_branch in fields["branches"].members().items():
            if not name or len(name) > 255:
                node_of_branch.fail("is not a branch name")
            branches[name] = variables(node_of_branch)
    chosen = (
        [("production", sections.get("production", {}))]
        if target == "production"
        else [
            ("preview", sections.get("preview", {})),
            (f"branch:{branch}", branches.get(branch, {}) if branch else {}),
        ]
    )
    env: dict[str, str] = {}
    scopes: dict[str, str] = {}
    for scope, section in chosen:
        env |= section
        scopes |= dict.fromkeys(section, scope)
    return env, scopes


def variables(node: Node) -> dict[str, str]:
    """One environment's variables: names as the project's own env vars allow them."""
    out: dict[str, str] = {}
    for name, value in node.members().items():
        if not ENV_NAME.fullmatch(name):
            value.fail(
                "is not a valid variable name: letters, digits and _, not starting with a digit"
            )
        if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
            value.fail("is reserved by Scale Mesh; pick another name")
        out[name] = value.text(most=MAX_ENV_VALUE, empty=True)
    return out


def previews(node: Node) -> Previews:
    fields = node.fields(("enabled", "branches", "ttlDays"), what="previews")
    enabled = fields["enabled"].flag() if "enabled" in fields else True
    globs: Mapping[str, Node] = {}
    if "branches" in fields:
        globs = fields["branches"].fields(("include", "exclude"), what="previews.branches")
    include, exclude = (
        globs[name].strings(most=MAX_LIST, length=255) if name in globs else ()
        for name in ("include", "exclude")
    )
    ttl_days = None
    if "ttlDays" in fields:
        ttl_days = fields["ttlDays"].integer()
        if not 1 <= ttl_days <= MAX_TTL_DAYS:
            fields["ttlDays"].fail(f"must be between 1 and {MAX_TTL_DAYS} days")
    return Previews(enabled=enabled, include=include, exclude=exclude, ttl_days=ttl_days)
