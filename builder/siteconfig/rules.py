"""Vercel-shaped redirects, rewrites and headers (scalemesh.json, vercel.json) into the RULES
FORMAT the proxy serves (`builder.siterules`), each rule's line kept for messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from builder.siteconfig.nodes import ConfigError, Node
from builder.siteconfig.records import SiteConfig
from builder.siterules import MAX_RULES, RuleError, compile_rules
from builder.siterules.files import REDIRECT_STATUSES

CONDITION_TYPES = ("header", "cookie", "query", "host")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REDIRECT = ("source", "destination", "permanent", "statusCode", "has", "missing")
_REWRITE = ("source", "destination", "has", "missing")
_HEADERS = ("source", "headers", "has", "missing")


@dataclass
class RuleSet:
    """Rules being read: the RULES FORMAT object, the line of each rule, what was not applied."""

    semantics: str
    source: str
    clean_urls: bool = False
    trailing_slash: bool | None = None
    redirects: list[dict[str, Any]] = field(default_factory=list)
    rewrites: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)
    lines: dict[str, list[int | None]] = field(
        default_factory=lambda: {"redirects": [], "rewrites": [], "headers": []}
    )
    paths: dict[str, list[str]] = field(
        default_factory=lambda: {"redirects": [], "rewrites": [], "headers": []}
    )
    warnings: list[str] = field(default_factory=list)

    def add(self, kind: str, rule: dict[str, Any], item: Node) -> None:
        rules: list[dict[str, Any]] = getattr(self, kind)
        rules.append(rule)
        self.lines[kind].append(item.line)
        self.paths[kind].append(item.path)

    def positions(self) -> dict[str, tuple[tuple[str, int | None], ...]]:
        """Each rule's path and line in the file, by kind (`SiteConfig.rule_positions`)."""
        return {
            kind: tuple(zip(self.paths[kind], self.lines[kind], strict=True)) for kind in self.lines
        }

    def empty(self) -> bool:
        return not (
            self.clean_urls
            or self.trailing_slash is not None
            or self.redirects
            or self.rewrites
            or self.headers
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "semantics": self.semantics,
            "source": self.source,
            "clean_urls": self.clean_urls,
            "trailing_slash": self.trailing_slash,
            "redirects": self.redirects,
            "rewrites": self.rewrites,
            "headers": self.headers,
        }


def vercel_rules(fields: Mapping[str, Node], source: str, *, strict: bool) -> RuleSet:
    """The rules of a scalemesh.json or vercel.json's top-level `fields`.

    `strict` (scalemesh.json): a field a rule does not know is an error; otherwise (vercel.json,
    whose rules take fields Scale Mesh does not do) it is a warning and the field is ignored.
    """
    rules = RuleSet("vercel", source)
    if "cleanUrls" in fields:
        rules.clean_urls = fields["cleanUrls"].flag()
    if "trailingSlash" in fields:
        rules.trailing_slash = fields["trailingSlash"].flag()
    readers = {"redirects": _redirect, "rewrites": _rewrite, "headers": _header}
    for kind, reader in readers.items():
        if kind in fields:
            for item in fields[kind].items(most=MAX_RULES):
                known = _item_fields(item, _FIELDS[kind], strict, rules.warnings)
                rule = reader(item, known)
                if not strict and kind == "rewrites" and _external(rule):
                    # vercel.json proxies an API this way; scalemesh.json is told it cannot.
                    rules.warnings.append(item.warning(_PROXY))
                    continue
                rules.add(kind, rule, item)
    return rules


_FIELDS = {"redirects": _REDIRECT, "rewrites": _REWRITE, "headers": _HEADERS}
_PROXY = "proxies to another site, which Scale Mesh does not do; this rewrite is not applied"


def _external(rule: Mapping[str, Any]) -> bool:
    return str(rule["destination"]).startswith(("http://", "https://"))


def _item_fields(
    item: Node, known: tuple[str, ...], strict: bool, warnings: list[str]
) -> dict[str, Node]:
    if strict:
        return item.fields(known)
    members = item.members()
    for name, node in list(members.items()):
        if name not in known:
            warnings.append(node.warning("is not supported by Scale Mesh; ignored"))
            del members[name]
    return members


def _required(item: Node, fields: Mapping[str, Node], name: str) -> Node:
    if name not in fields:
        item.fail(f"needs {name}")
    return fields[name]


def _source(item: Node, fields: Mapping[str, Node]) -> str:
    node = _required(item, fields, "source")
    source = node.text()
    if not source.startswith("/"):
        node.fail("must start with /")
    return source


def _redirect(item: Node, fields: Mapping[str, Node]) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "source": _source(item, fields),
        "destination": _required(item, fields, "destination").text(),
    }
    status = 308  # Vercel's default: `permanent` is true unless it says otherwise
    if "statusCode" in fields:
        if "permanent" in fields:
            fields["statusCode"].fail("and permanent cannot both be set: use one")
        code = fields["statusCode"]
        status = code.integer()
        if status not in REDIRECT_STATUSES:
            code.fail("must be one of 301, 302, 303, 307 or 308")
    elif "permanent" in fields:
        status = 308 if fields["permanent"].flag() else 307
    rule |= {"status": status, "force": False}
    return rule | conditions(fields)


def _rewrite(item: Node, fields: Mapping[str, Node]) -> dict[str, Any]:
    rule = {
        "source": _source(item, fields),
        "destination": _required(item, fields, "destination").text(),
    }
    return rule | conditions(fields)


def _header(item: Node, fields: Mapping[str, Node]) -> dict[str, Any]:
    source = _source(item, fields)
    pairs = _required(item, fields, "headers")
    headers: list[list[str]] = []
    for pair in pairs.items(most=MAX_RULES):
        values = pair.fields(("key", "value"))
        name = _required(pair, values, "key").text(most=256)
        check_header_name(values["key"], name)
        headers.append([name, header_value(_required(pair, values, "value"))])
    if not headers:
        pairs.fail("must list at least one header")
    return {"source": source, "headers": headers} | conditions(fields)


def check_header_name(node: Node, name: str) -> None:
    if not _HEADER_NAME.fullmatch(name) or len(name) > 256:
        node.fail("is not a valid header name")


def header_value(node: Node) -> str:
    value = node.text(empty=True)
    if "\r" in value or "\n" in value:
        node.fail("must be one line")
    return value


def conditions(fields: Mapping[str, Node]) -> dict[str, Any]:
    """`has` and `missing`, each left out when empty."""
    out: dict[str, Any] = {}
    for name in ("has", "missing"):
        if name in fields:
            items = [_condition(item) for item in fields[name].items(most=16)]
            if items:
                out[name] = items
    return out


def _condition(item: Node) -> dict[str, str]:
    fields = item.fields(("type", "key", "value"))
    kind_node = _required(item, fields, "type")
    kind = kind_node.text()
    if kind not in CONDITION_TYPES:
        kind_node.fail("must be header, cookie, query or host")
    condition = {"type": kind}
    if kind == "host":
        # Vercel's host condition has a value and no key.
        if "key" in fields:
            fields["key"].fail("is not used by a host condition: give its value")
        condition["value"] = _required(item, fields, "value").text()
        return condition
    condition["key"] = _required(item, fields, "key").text(most=256)
    if "value" in fields:
        condition["value"] = fields["value"].text(empty=True)
    return condition


def check_compiled(config: SiteConfig) -> None:
    """The rules compiled as the proxy will (`builder.siterules`): a rule it refuses fails the
    build here, at the rule's line, not when the site is served."""
    if config.rules is None:
        return
    try:
        compile_rules(config.rules)
    except RuleError as exc:
        known = config.rule_positions.get(exc.kind, ())
        if exc.index is not None and exc.index < len(known):
            path, line = known[exc.index]
        else:  # a whole list, or a top-level setting: the readers always write those right
            path, line = exc.kind, config.lines.get(exc.kind)
        raise ConfigError(config.source or "config", line, f"{path}: {exc.message}") from None
