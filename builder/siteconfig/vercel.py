"""`vercel.json`, read as a Scale Mesh config: the build settings and routing rules a static
site uses, and a warning naming each feature that is not applied (never a silent drop)."""

from __future__ import annotations

from collections.abc import Callable

from builder.detect import NODE_FRAMEWORKS
from builder.errors import BuildError
from builder.generators import framework_name
from builder.siteconfig.nodes import Node
from builder.siteconfig.records import SiteConfig
from builder.siteconfig.rules import vercel_rules
from builder.siteconfig.scalemesh import document, relative_path

NAME = "vercel.json"
READ = (
    "buildCommand",
    "installCommand",
    "outputDirectory",
    "framework",
    "ignoreCommand",
    "cleanUrls",
    "trailingSlash",
    "redirects",
    "rewrites",
    "headers",
)
QUIET = frozenset({"$schema", "version"})
"""Read by Vercel's own tools only; nothing to tell."""
UNSUPPORTED = {
    # Each follows the field's name in the warning.
    "functions": "(serverless functions) are not supported: Scale Mesh serves static files only",
    "crons": "(cron jobs) are not supported; not applied",
    "regions": "do not apply: there are no functions to place",
    "functionFailoverRegions": "do not apply: there are no functions to place",
    "images": "(image optimization) is not supported; images are served as they are",
    "routes": "(legacy) are not read; use redirects, rewrites and headers",
    "builds": "(legacy) are not read; use buildCommand and outputDirectory",
    "env": "is not read; set the project's env vars, or env in scalemesh.json",
    "build": "(build.env) is not read; set the project's env vars, or env in scalemesh.json",
    "devCommand": "is for `vercel dev` only; not used",
}
MIDDLEWARE = ("middleware.js", "middleware.ts", "middleware.mjs", "middleware.cjs")


def read(text: str, source: str, *, present: Callable[[str], bool]) -> SiteConfig:
    """The config in `text` (the file at `source`); `present(name)`: whether the file's own
    directory holds `name` (Edge Middleware is a file beside vercel.json, not a field)."""
    fields = document(text, source).members()
    warnings: list[str] = []
    for name, node in fields.items():
        if name not in READ and name not in QUIET:
            warnings.append(
                node.warning(UNSUPPORTED.get(name, "is not supported by Scale Mesh; ignored"))
            )
    warnings += [
        f"{source}: {name} (Edge Middleware) is not supported; it does not run"
        for name in MIDDLEWARE
        if present(name)
    ]

    def text_of(name: str) -> str | None:
        if name in fields and fields[name].value == "":
            # Vercel's "override with nothing"; here detection decides, and the log says so.
            warnings.append(fields[name].warning("is empty; ignored (detection decides)"))
            return None
        return fields[name].optional_text() if name in fields else None

    rules = vercel_rules(fields, source, strict=False)
    return SiteConfig(
        source=source,
        build_command=text_of("buildCommand"),
        install_command=text_of("installCommand"),
        output_directory=(
            relative_path(fields["outputDirectory"]) if "outputDirectory" in fields else None
        ),
        framework=_framework(fields.get("framework"), warnings),
        ignore_command=text_of("ignoreCommand"),
        clean_urls=rules.clean_urls if "cleanUrls" in fields else None,
        trailing_slash=rules.trailing_slash,
        rules=None if rules.empty() else rules.to_json(),
        rule_positions=rules.positions(),
        warnings=(*warnings, *rules.warnings),
        lines={name: node.line for name, node in fields.items() if node.line},
    )


def _framework(node: Node | None, warnings: list[str]) -> str | None:
    slug = None if node is None else node.optional_text(most=64)
    if slug is None or node is None:
        return None
    try:
        # Vercel's slugs are ours, or aliases of ours (nextjs, docusaurus-2, other, ...).
        return framework_name(slug, NODE_FRAMEWORKS)
    except BuildError:
        warnings.append(node.warning("is not one Scale Mesh builds by name; detection decides"))
        return None
