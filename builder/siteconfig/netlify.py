"""`netlify.toml`, read as a Scale Mesh config: `[build]` and the `[context.*]` that apply to
the build's target and branch, `[[redirects]]` and `[[headers]]`; a warning names each feature
that is not applied."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Any

from builder.siteconfig.nodes import ConfigError, Node, Step, root
from builder.siteconfig.records import SiteConfig
from builder.siteconfig.rules import RuleSet, check_header_name, header_value
from builder.siteconfig.scalemesh import relative_path, variables
from builder.siterules import MAX_RULES
from builder.siterules.files import NOT_FOUND, REDIRECT_STATUSES, REWRITE

NAME = "netlify.toml"
SETTINGS = ("base", "publish", "command", "ignore", "environment")
DEPLOY_CONTEXTS = ("production", "deploy-preview", "branch-deploy")
UNSUPPORTED = {
    # Each follows the field's name in the warning.
    "functions": "(Netlify Functions) are not supported: Scale Mesh serves static files only",
    "edge_functions": "(Edge Functions) are not supported; not applied",
    "plugins": "(build plugins) are not run",
    "dev": "is for `netlify dev` only; not used",
    "processing": "(post processing) is not done; files are served as built",
    "images": "(image CDN) is not supported; images are served as they are",
}
STATUSES = tuple(sorted(REDIRECT_STATUSES | {REWRITE, NOT_FOUND}))
"""A `[[redirects]]` status: what the proxy serves for Netlify's rules (`builder.siterules`)."""
_CAPTURE = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_TABLE = re.compile(r"^\s*(\[\[?)([^\]]+)\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)
_KEY_PART = re.compile(r"[A-Za-z0-9_-]+|\"([^\"]*)\"|'([^']*)'")


def read(text: str, source: str, *, target: str, branch: str) -> SiteConfig:
    """The config `text` (the file at `source`) holds, for a `target` build of `branch`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Its message names what is wrong and where ("... (at line 3, column 8)"), never text.
        message = str(exc)
        found = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(found.group(1)) if found else None
        detail = message[: found.start()].strip() if found else message
        raise ConfigError(source, line, f"is not valid TOML: {detail}") from None
    except RecursionError:  # tomllib recurses once per level of a nested array or table
        raise ConfigError(source, None, "is not valid TOML: it is nested too deeply") from None
    lines = toml_lines(text)
    fields = root(data, source, None, lambda _, __, steps: lines.get(steps)).members()
    warnings: list[str] = []
    for name, node in fields.items():
        if name not in ("build", "context", "redirects", "headers"):
            warnings.append(
                node.warning(UNSUPPORTED.get(name, "is not supported by Scale Mesh; ignored"))
            )
    layers = [("build", _settings(fields["build"], warnings))] if "build" in fields else []
    contexts = fields["context"].members() if "context" in fields else {}
    named = {name: _settings(node, warnings) for name, node in contexts.items() if name != "dev"}
    if "dev" in contexts:
        warnings.append(contexts["dev"].warning(UNSUPPORTED["dev"]))
    chosen = ["production"] if target == "production" else ["branch-deploy", "deploy-preview"]
    if target != "production" and branch and branch not in DEPLOY_CONTEXTS:
        chosen.append(branch)
    layers += [(_scope(name), named[name]) for name in chosen if name in named]
    merged: dict[str, Any] = {}
    env: dict[str, str] = {}
    scopes: dict[str, str] = {}
    for scope, layer in layers:
        env |= layer.get("environment", {})
        scopes |= dict.fromkeys(layer.get("environment", {}), scope)
        merged |= {name: value for name, value in layer.items() if name != "environment"}
    rules = RuleSet("netlify", source)
    if "redirects" in fields:
        for item in fields["redirects"].items(most=MAX_RULES):
            rule = _redirect(item, rules.warnings)
            if rule is not None:
                rules.add("redirects", rule, item)
    if "headers" in fields:
        for item in fields["headers"].items(most=MAX_RULES):
            rules.add("headers", _headers(item, rules.warnings), item)
    return SiteConfig(
        source=source,
        build_command=merged.get("command"),
        output_directory=merged.get("publish"),
        root_directory=merged.get("base"),
        ignore_command=merged.get("ignore"),
        node_version=env.get("NODE_VERSION"),
        rules=None if rules.empty() else rules.to_json(),
        rule_positions=rules.positions(),
        env=env,
        env_scopes=scopes,
        warnings=(*warnings, *rules.warnings),
        lines={name: node.line for name, node in fields.items() if node.line},
    )


def _scope(context: str) -> str:
    return context if context in DEPLOY_CONTEXTS else f"branch:{context}"


def _settings(node: Node, warnings: list[str]) -> dict[str, Any]:
    """One `[build]` or `[context.x]` table's settings (every one is checked, used or not)."""
    out: dict[str, Any] = {}
    for name, field in node.members().items():
        if name in ("base", "publish"):
            out[name] = relative_path(field)
        elif name in ("command", "ignore"):
            out[name] = field.text()
        elif name == "environment":
            out[name] = variables(_stringified(field))
        else:
            warnings.append(
                field.warning(UNSUPPORTED.get(name, "is not supported by Scale Mesh; ignored"))
            )
    return out


def _stringified(node: Node) -> Node:
    """An `environment` table with numbers and booleans as the strings a shell would see."""
    if not isinstance(node.value, dict):
        node.fail("must be a table")
    values = {
        name: str(value).lower()
        if isinstance(value, bool)
        else str(value)
        if isinstance(value, int | float)
        else value
        for name, value in node.value.items()
    }
    return Node(values, node.steps, node.line, node.source, node.line_of)


def _redirect(item: Node, warnings: list[str]) -> dict[str, Any] | None:
    """One `[[redirects]]` as a rule; None (with a warning) when it cannot be applied."""
    fields = _known(item, ("from", "to", "status", "force", "conditions", "query"), warnings)
    for name in ("from", "to"):
        if name not in fields:
            item.fail(f"needs {name}")
    source = fields["from"].text()
    if not source.startswith("/"):
        warnings.append(
            fields["from"].warning(
                "is a redirect of another host (domain-level), which Scale Mesh does not apply"
            )
        )
        return None
    status = fields["status"].integer() if "status" in fields else 301
    if status not in STATUSES:
        fields["status"].fail("must be one of " + ", ".join(map(str, STATUSES)))
    destination = fields["to"].text()
    if status == 200 and destination.startswith(("http://", "https://")):
        warnings.append(
            fields["to"].warning(
                "proxies to another site (a 200 to a URL), which Scale Mesh does not do; "
                "this rule is not applied"
            )
        )
        return None
    has: list[dict[str, str]] = []
    if "conditions" in fields:
        for name, condition in fields["conditions"].members().items():
            if name.lower() != "cookie":  # Country, Language, Role: no request says them
                warnings.append(
                    condition.warning(
                        "is a condition Scale Mesh cannot evaluate; this redirect is not applied"
                    )
                )
                return None
            cookies = condition.strings(most=16, length=256)
            if len(cookies) != 1:
                warnings.append(
                    condition.warning(
                        "lists several cookies (any of them), which Scale Mesh cannot evaluate; "
                        "this redirect is not applied"
                    )
                )
                return None
            has.append({"type": "cookie", "key": cookies[0]})
    if "query" in fields:
        for name, value in fields["query"].members().items():
            if not name or len(name) > 256:
                value.fail("is not a query parameter name")
            has.append({"type": "query", "key": name, "value": _query_value(value)})
    rule: dict[str, Any] = {
        "source": source,
        "destination": destination,
        "status": status,
        "force": fields["force"].flag() if "force" in fields else False,
    }
    return rule | ({"has": has} if has else {})


def _query_value(node: Node) -> str:
    """Netlify's `id = ":id"` captures the parameter (`(?<id>.*)` in a `has` value); any
    other text must be matched as it is."""
    text = node.text(most=256)
    capture = _CAPTURE.fullmatch(text)
    return f"(?<{capture.group(1)}>.*)" if capture else re.escape(text)


def _headers(item: Node, warnings: list[str]) -> dict[str, Any]:
    fields = _known(item, ("for", "values"), warnings)
    if "for" not in fields or "values" not in fields:
        item.fail("needs for and values")
    source = fields["for"].text()
    if not source.startswith("/"):
        fields["for"].fail("must start with /")
    headers: list[list[str]] = []
    for name, value in fields["values"].members().items():
        check_header_name(value, name)
        # A multi-line value (a long Content-Security-Policy) is one header, its lines
        # joined as Netlify joins them.
        lines = [part.strip() for part in value.text(empty=True).splitlines()]
        joined = ", ".join(part for part in lines if part)
        headers.append(
            [name, header_value(Node(joined, value.steps, value.line, value.source, value.line_of))]
        )
    if not headers:
        fields["values"].fail("must set at least one header")
    return {"source": source, "headers": headers}


def _known(item: Node, known: tuple[str, ...], warnings: list[str]) -> dict[str, Node]:
    members = item.members()
    for name in [name for name in members if name not in known]:
        warnings.append(members.pop(name).warning("is not supported by Scale Mesh; ignored"))
    return members


def toml_lines(text: str) -> dict[tuple[Step, ...], int]:
    """The line of each table and key in a TOML text, by path (arrays of tables indexed).

    tomllib keeps no positions; this reads the lines again, for messages only: a key it misses
    (in a multi-line value) is reported at its table's line.
    """
    lines: dict[tuple[Step, ...], int] = {}
    counts: dict[tuple[str, ...], int] = {}
    table: tuple[Step, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _TABLE.match(line)
        if header is not None:
            parts = _key_parts(header.group(2))
            if header.group(1) == "[[":
                counts[parts] = counts.get(parts, -1) + 1
                array = (*_indexed(parts[:-1], counts), parts[-1])
                lines.setdefault(array, number)
                table = (*array, counts[parts])
            else:
                table = _indexed(parts, counts)
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key is not None:
            parts = _key_parts(key.group(1))
            for end in range(1, len(parts) + 1):
                lines.setdefault((*table, *parts[:end]), number)
    return lines


def _key_parts(key: str) -> tuple[str, ...]:
    return tuple(
        match.group(1)
        if match.group(1) is not None
        else match.group(2)
        if match.group(2) is not None
        else match.group(0)
        for match in _KEY_PART.finditer(key)
    )


def _indexed(parts: tuple[str, ...], counts: Mapping[tuple[str, ...], int]) -> tuple[Step, ...]:
    """A table's path with the current index after each array of tables it is inside."""
    out: list[Step] = []
    for end in range(1, len(parts) + 1):
        out.append(parts[end - 1])
        if parts[:end] in counts:
            out.append(counts[parts[:end]])
    return tuple(out)
