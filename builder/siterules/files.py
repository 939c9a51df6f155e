"""Parse a site's `_redirects` and `_headers` (Netlify's formats) and match paths against them.

Lines that cannot be used are skipped and listed in `Rules.errors`, for the deployment's log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from builder.siterules.netlify import compile_pattern, fill
from builder.siterules.safety import MAX_COSTLY, MAX_UNBOUNDED, PatternError, header_problem

Headers = list[tuple[str, str]]

REDIRECTS_FILE = "_redirects"
HEADERS_FILE = "_headers"

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REWRITE = 200
NOT_FOUND = 404
_RULE_STATUSES = REDIRECT_STATUSES | {REWRITE, NOT_FOUND}

MAX_RULES = 2048
"""Rules of each kind a site may have (redirects, rewrites, header blocks); more are refused."""
MAX_REPORTED = 20
"""Problems of `_redirects`/`_headers` listed one by one in a build log; the rest are counted."""


@dataclass(frozen=True, slots=True)
class RedirectRule:
    source: str
    target: str
    status: int
    force: bool
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class HeaderRule:
    source: str
    headers: tuple[tuple[str, str], ...]
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Rules:
    redirects: tuple[RedirectRule, ...] = ()
    headers: tuple[HeaderRule, ...] = ()
    errors: tuple[str, ...] = ()
    """One line per skipped rule (`_redirects:3: ...`), for the deployment's log."""
    forced: tuple[RedirectRule, ...] = ()
    """The redirects with `!`: the only ones that count when a file answers the path (so a
    site's files, most requests, are not checked against every redirect)."""

    @classmethod
    def parse(cls, redirects_text: str = "", headers_text: str = "") -> Rules:
        errors: list[str] = []
        redirects = tuple(_parse_redirects(redirects_text, errors))
        headers = tuple(_parse_headers(headers_text, errors))
        costly = [rule for rule in headers if rule.source.count("*") >= MAX_UNBOUNDED]
        if len(costly) > MAX_COSTLY:
            dropped = set(map(id, costly[MAX_COSTLY:]))
            headers = tuple(rule for rule in headers if id(rule) not in dropped)
            errors.append(
                f"{HEADERS_FILE}: only the first {MAX_COSTLY} paths with two * count "
                f"({len(dropped)} more are skipped)"
            )
        for name, rules in ((REDIRECTS_FILE, redirects), (HEADERS_FILE, headers)):
            if len(rules) > MAX_RULES:
                errors.append(f"{name}: only the first {MAX_RULES:,} of {len(rules):,} rules count")
        redirects = redirects[:MAX_RULES]
        forced = tuple(rule for rule in redirects if rule.force)
        return cls(redirects, headers[:MAX_RULES], tuple(errors), forced)

    def match_redirect(self, path: str, *, file_exists: bool) -> tuple[RedirectRule, str] | None:
        """The first rule for `path` and its target with placeholders filled in.

        Netlify's shadowing: when a file answers the path, only forced (`!`) rules count.
        """
        for rule in self.forced if file_exists else self.redirects:
            found = rule.pattern.fullmatch(path)
            if found is not None:
                return rule, fill(rule.target, found.groupdict(default=""))
        return None

    def headers_for(self, path: str) -> Headers:
        """Every header of every block matching `path`; repeats of one name are comma-joined."""
        combined: dict[str, tuple[str, list[str]]] = {}
        for rule in self.headers:
            if rule.pattern.fullmatch(path):
                for name, value in rule.headers:
                    combined.setdefault(name.lower(), (name, []))[1].append(value)
        return [(name, ", ".join(values)) for name, values in combined.values()]


def _parse_redirects(text: str, errors: list[str]) -> Iterable[RedirectRule]:
    for number, line in enumerate(text.splitlines(), 1):
        # Only whole lines are comments: `#` inside a target is a URL fragment.
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        where = f"{REDIRECTS_FILE}:{number}"
        if len(fields) < 2 or len(fields) > 3:
            # Netlify's query-parameter and country/language conditions are not supported.
            errors.append(f"{where}: expected `from to [status][!]`")
            continue
        source, target = fields[0], fields[1]
        status_text = fields[2] if len(fields) == 3 else "301"
        force = status_text.endswith("!")
        status_text = status_text.removesuffix("!") or "301"
        if not status_text.isdigit() or int(status_text) not in _RULE_STATUSES:
            errors.append(f"{where}: unsupported status {fields[2]!r}")
            continue
        status = int(status_text)
        if not source.startswith("/"):
            errors.append(f"{where}: the source must be a path starting with /")
            continue
        absolute = target.startswith(("https://", "http://"))
        if not target.startswith("/") and not absolute:
            errors.append(f"{where}: the target must be a path or an http(s) URL")
            continue
        if absolute and status not in REDIRECT_STATUSES:
            # A 200 to another origin would make us a proxy for anyone's site.
            errors.append(f"{where}: only redirects may point at another site")
            continue
        try:
            pattern = compile_pattern(source, splat_anywhere=False)
        except PatternError as exc:
            errors.append(f"{where}: the source {exc}")
            continue
        yield RedirectRule(source, target, status, force, pattern)


def _parse_headers(text: str, errors: list[str]) -> Iterable[HeaderRule]:
    source: str | None = None
    pattern: re.Pattern[str] | None = None
    block: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{HEADERS_FILE}:{number}"
        if stripped.startswith(("/", "http://", "https://")):
            if source is not None and pattern is not None and block:
                yield HeaderRule(source, tuple(block), pattern)
            source, block = stripped, []
            if stripped.startswith("/"):
                try:
                    pattern = compile_pattern(stripped, splat_anywhere=True)
                except PatternError as exc:
                    errors.append(f"{where}: the path {exc}")
                    pattern = None
            else:
                # Netlify's per-host blocks: every deployment has several hosts, so such a
                # block would apply inconsistently; drop it whole rather than on every host.
                errors.append(f"{where}: per-host header rules are not supported")
                pattern = None
            continue
        name, colon, value = stripped.partition(":")
        name, value = name.strip(), value.strip()
        if source is None:
            errors.append(f"{where}: a header before any path")
        elif not colon:
            errors.append(f"{where}: expected `Name: value`")
        elif (problem := header_problem(name, value)) is not None:
            errors.append(f"{where}: {problem}")
        else:
            block.append((name, value))
    if source is not None and pattern is not None and block:
        yield HeaderRule(source, tuple(block), pattern)


def problems(files: Iterable[tuple[str, Path]]) -> list[str]:
    """What the proxy will skip in an output's `_redirects` and `_headers`, for the build log:
    the first `MAX_REPORTED` problems, then how many more there are."""
    texts = {
        path: staged.read_bytes().decode("utf-8", errors="replace")
        for path, staged in files
        if path in (REDIRECTS_FILE, HEADERS_FILE)
    }
    errors = Rules.parse(texts.get(REDIRECTS_FILE, ""), texts.get(HEADERS_FILE, "")).errors
    shown = [f"{error} (the proxy skips this rule)" for error in errors[:MAX_REPORTED]]
    if len(errors) > MAX_REPORTED:
        shown.append(f"{len(errors) - MAX_REPORTED} more problems in _redirects/_headers")
    return shown
