"""A config file's rules (a manifest's `rules` object) checked and compiled once, then matched.

`compile_rules(raw)` refuses a bad rule with a `RuleError` naming its kind and index: the
builder fails the build with it, the proxy serves the site without the rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from builder.siterules.conditions import (
    READS_HEADERS,
    Condition,
    RequestView,
    holds,
    parse_conditions,
)
from builder.siterules.files import MAX_RULES, NOT_FOUND, REDIRECT_STATUSES, REWRITE, Headers
from builder.siterules.netlify import compile_pattern, fill
from builder.siterules.pathregexp import (
    MAX_SOURCE,
    PathPattern,
    compile_source,
    parameters,
    substitute,
)
from builder.siterules.safety import (
    MAX_COSTLY,
    MAX_MATCHED,
    MAX_UNBOUNDED,
    PatternError,
    header_problem,
)

VERCEL = "vercel"
NETLIFY = "netlify"
KINDS = ("redirects", "rewrites", "headers")


class RuleError(ValueError):
    """A rule that cannot be used: which list (`kind`), which entry (`index`), and why."""

    def __init__(self, kind: str, index: int | None, message: str) -> None:
        self.kind, self.index, self.message = kind, index, message
        where = kind if index is None else f"{kind}[{index}]"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Rule:
    source: str
    pattern: PathPattern
    destination: str = ""
    status: int = REWRITE
    force: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    has: tuple[Condition, ...] = ()
    missing: tuple[Condition, ...] = ()
    carried: tuple[str, ...] = ()
    """A rewrite's source parameters that go along as its query: its destination uses none."""

    def captures(self, found: re.Match[str], request: RequestView) -> dict[str, str] | None:
        """What the rule captured of a path its pattern matched (`found`), or None: a `has` or
        `missing` condition refuses `request`."""
        values = self.pattern.captures(found)
        extra = holds(request, self.has, self.missing)
        return None if extra is None else {**values, **extra}


@dataclass(frozen=True, slots=True)
class Matched:
    """A redirect rule that answers a request, its destination filled in."""

    status: int
    target: str
    force: bool

    @property
    def is_redirect(self) -> bool:
        return self.status in REDIRECT_STATUSES


@dataclass(frozen=True, slots=True)
class CompiledRules:
    semantics: str = NETLIFY
    source: str = ""
    """The config file the rules came from, for messages."""
    clean_urls: bool = False
    trailing_slash: bool | None = None
    redirects: tuple[Rule, ...] = ()
    rewrites: tuple[Rule, ...] = ()
    headers: tuple[Rule, ...] = ()
    forced: tuple[Rule, ...] = ()
    """The redirects with `force`: the only ones that count when a file answers the path (so a
    site's files, most requests, are not checked against every redirect)."""
    reads_headers: bool = False
    """Some rule looks at a request header or cookie: answers differ by more than the URL
    (found once by `compile_rules`; the proxy asks on every request)."""

    def match_redirect(self, request: RequestView, *, file_exists: bool = False) -> Matched | None:
        """The first redirect rule for `request`.

        Netlify's shadowing: when a file answers the path, only forced rules count (Vercel's
        redirects come before the filesystem: its caller passes `file_exists=False`).
        """
        for rule, values in _matching(self.forced if file_exists else self.redirects, request):
            return Matched(rule.status, self._fill(rule.destination, values), rule.force)
        return None

    def match_rewrite(self, request: RequestView) -> str | None:
        """Vercel: the destination of the first rewrite for `request` (after a filesystem miss).

        As Vercel does, when the destination uses none of the source's parameters they go
        along as its query (`/old/:slug` → `/new` serves `/new?slug=...`).
        """
        for rule, values in _matching(self.rewrites, request):
            target = substitute(rule.destination, values)
            if rule.carried:
                query = "&".join(f"{name}={quote(values[name], safe='')}" for name in rule.carried)
                target += ("&" if "?" in target else "?") + query
            return target
        return None

    def headers_for(self, request: RequestView) -> Headers:
        """The headers of every rule matching `request`: Vercel's later rules override a name,
        Netlify's repeats are comma-joined."""
        combined: dict[str, tuple[str, list[str]]] = {}
        for rule, values in _matching(self.headers, request):
            for name, value in rule.headers:
                if self.semantics == VERCEL:
                    combined[name.lower()] = (name, [substitute(value, values)])
                else:
                    combined.setdefault(name.lower(), (name, []))[1].append(value)
        return [(name, ", ".join(values)) for name, values in combined.values()]

    def _fill(self, destination: str, values: Mapping[str, str]) -> str:
        filler: Callable[[str, Mapping[str, str]], str] = (
            substitute if self.semantics == VERCEL else fill
        )
        target = filler(destination, values)
        # A capture of `//evil.example` must not turn a local path into another site's.
        return "/" + target.lstrip("/") if target.startswith("/") else target


def _matching(
    rules: tuple[Rule, ...], request: RequestView
) -> Iterator[tuple[Rule, dict[str, str]]]:
    """Each of `rules` that answers `request`, in order, with what it captured.

    The path's length is checked once, and a rule whose pattern does not match costs one regex
    call and nothing else: a site may have thousands of rules, asked on every request.
    """
    path = request.path
    if len(path) > MAX_MATCHED:
        return
    for rule in rules:
        found = rule.pattern.regex.fullmatch(path)
        if found is not None:
            values = rule.captures(found, request)
            if values is not None:
                yield rule, values


def compile_rules(raw: Mapping[str, Any]) -> CompiledRules:
    """A manifest's `rules` object, checked and compiled; raises `RuleError`."""
    if not isinstance(raw, Mapping):
        raise RuleError("rules", None, "must be an object")
    semantics = raw.get("semantics")
    if semantics not in (VERCEL, NETLIFY):
        raise RuleError("semantics", None, "must be 'vercel' or 'netlify'")
    clean_urls = raw.get("clean_urls", False)
    if not isinstance(clean_urls, bool):
        raise RuleError("clean_urls", None, "must be true or false")
    trailing_slash = raw.get("trailing_slash")
    if trailing_slash is not None and not isinstance(trailing_slash, bool):
        raise RuleError("trailing_slash", None, "must be true, false or null")
    lists: dict[str, list[Any]] = {}
    for kind in KINDS:
        items = raw.get(kind)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise RuleError(kind, None, "must be a list")
        if len(items) > MAX_RULES:
            raise RuleError(
                kind, None, f"has {len(items):,} rules; at most {MAX_RULES:,} are allowed"
            )
        lists[kind] = items
    redirects = tuple(
        _redirect(item, index, str(semantics)) for index, item in enumerate(lists["redirects"])
    )
    rewrites = tuple(
        _rewrite(item, index, str(semantics)) for index, item in enumerate(lists["rewrites"])
    )
    headers = tuple(
        _headers(item, index, str(semantics)) for index, item in enumerate(lists["headers"])
    )
    compiled = CompiledRules(
        semantics=str(semantics),
        source=str(raw.get("source") or ""),
        clean_urls=clean_urls,
        trailing_slash=trailing_slash,
        redirects=redirects,
        rewrites=rewrites,
        headers=headers,
        forced=tuple(rule for rule in redirects if rule.force),
        reads_headers=any(
            condition.kind in READS_HEADERS
            for rule in (*redirects, *rewrites, *headers)
            for condition in (*rule.has, *rule.missing)
        ),
    )
    costly = [
        (kind, index)
        for kind in KINDS
        for index, rule in enumerate(getattr(compiled, kind))
        if rule.pattern.cost >= MAX_UNBOUNDED
    ]
    if len(costly) > MAX_COSTLY:
        kind, index = costly[MAX_COSTLY]
        raise RuleError(
            kind,
            index,
            f"more than {MAX_COSTLY} rules have two unbounded patterns ((.*), *); "
            "make this one narrower",
        )
    return compiled


def _base(kind: str, index: int, item: Any, semantics: str) -> dict[str, Any]:
    """The source, its pattern and the conditions every kind of rule has."""
    if not isinstance(item, Mapping):
        raise RuleError(kind, index, "must be an object")
    source = item.get("source")
    if not isinstance(source, str) or not source:
        raise RuleError(kind, index, "source must be a non-empty string")
    try:
        pattern = _pattern(source, semantics, splat_anywhere=kind == "headers")
        has = parse_conditions(item.get("has"), "has")
        missing = parse_conditions(item.get("missing"), "missing")
    except PatternError as exc:
        raise RuleError(kind, index, f"source {source!r} {exc}") from None
    except ValueError as exc:
        raise RuleError(kind, index, str(exc)) from None
    return {"source": source, "pattern": pattern, "has": has, "missing": missing}


def _pattern(source: str, semantics: str, *, splat_anywhere: bool) -> PathPattern:
    if semantics == VERCEL:
        return compile_source(source)
    if not source.startswith("/") or len(source) > MAX_SOURCE:
        raise PatternError(f"must be a path starting with / of at most {MAX_SOURCE} characters")
    regex = compile_pattern(source, splat_anywhere=splat_anywhere)
    names = sorted(regex.groupindex, key=regex.groupindex.__getitem__)
    return PathPattern(source, regex, tuple(names), source.count("*"))


def _destination(kind: str, index: int, item: Mapping[str, Any], *, external: bool) -> str:
    destination = item.get("destination")
    if not isinstance(destination, str) or not destination:
        raise RuleError(kind, index, "destination must be a non-empty string")
    if len(destination) > MAX_SOURCE:
        raise RuleError(kind, index, f"destination is longer than {MAX_SOURCE} characters")
    absolute = destination.startswith(("https://", "http://"))
    if absolute and not external:
        # Serving another origin's pages under our hosts would make us an open proxy.
        raise RuleError(kind, index, "a rewrite may not point at another site (only redirects may)")
    if not absolute and not destination.startswith("/"):
        raise RuleError(kind, index, "destination must be a path starting with / or an http(s) URL")
    if not destination.isprintable():
        raise RuleError(kind, index, "destination must not hold control characters")
    return destination


def _redirect(item: Any, index: int, semantics: str) -> Rule:
    base = _base("redirects", index, item, semantics)
    allowed = REDIRECT_STATUSES if semantics == VERCEL else REDIRECT_STATUSES | {REWRITE, NOT_FOUND}
    status = item.get("status", 308 if semantics == VERCEL else 301)
    if isinstance(status, bool) or not isinstance(status, int) or status not in allowed:
        shown = ", ".join(str(code) for code in sorted(allowed))
        raise RuleError("redirects", index, f"status must be one of {shown}")
    force = item.get("force", False)
    if not isinstance(force, bool):
        raise RuleError("redirects", index, "force must be true or false")
    external = status in REDIRECT_STATUSES
    destination = _destination("redirects", index, item, external=external)
    return Rule(destination=destination, status=status, force=force, **base)


def _rewrite(item: Any, index: int, semantics: str) -> Rule:
    base = _base("rewrites", index, item, semantics)
    destination = _destination("rewrites", index, item, external=False)
    # As Vercel does: when the destination uses none of the source's parameters, they go along
    # as its query. Found once here, not on every request the rule answers.
    named = tuple(name for name in base["pattern"].names if name)
    carried = () if parameters(destination) & set(named) else named
    return Rule(destination=destination, carried=carried, **base)


def _headers(item: Any, index: int, semantics: str) -> Rule:
    base = _base("headers", index, item, semantics)
    pairs = item.get("headers")
    if not isinstance(pairs, list) or not pairs:
        raise RuleError("headers", index, "headers must be a non-empty list of [name, value]")
    checked: list[tuple[str, str]] = []
    for pair in pairs:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise RuleError("headers", index, "headers must be a list of [name, value] strings")
        problem = header_problem(pair[0], pair[1])
        if problem is not None:
            raise RuleError("headers", index, problem)
        checked.append((pair[0], pair[1]))
    return Rule(headers=tuple(checked), **base)
