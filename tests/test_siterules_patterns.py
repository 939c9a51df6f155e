"""`builder.siterules`: Vercel's path patterns and the limits on every user regex."""

from __future__ import annotations

import pytest

from builder.siterules.pathregexp import compile_source
from builder.siterules.safety import PatternError, check_pattern

# --- path-to-regexp, as Vercel reads `source` ----------------------------------------------


@pytest.mark.parametrize(
    ("source", "path", "captures"),
    [
        ("/blog/:slug", "/blog/hello", {"slug": "hello", "$1": "hello"}),
        ("/blog/:slug", "/blog/a/b", None),
        ("/blog/:slug", "/blog/hello/", None),  # strict: a trailing slash is another path
        ("/Blog", "/blog", None),  # case-sensitive
        ("/blog/:slug*", "/blog", {"slug": "", "$1": ""}),
        ("/blog/:slug*", "/blog/a/b/c", {"slug": "a/b/c", "$1": "a/b/c"}),
        ("/blog/:slug+", "/blog", None),
        ("/blog/:slug+", "/blog/a/b", {"slug": "a/b", "$1": "a/b"}),
        ("/docs/:page?", "/docs", {"page": "", "$1": ""}),
        ("/docs/:page?", "/docs/intro", {"page": "intro", "$1": "intro"}),
        ("/post/:id(\\d+)", "/post/42", {"id": "42", "$1": "42"}),
        ("/post/:id(\\d+)", "/post/abc", None),
        ("/(.*)", "/any/thing", {"$1": "any/thing"}),
        ("/old/(.*)/:name", "/old/a/b/c", {"$1": "a/b", "$2": "c", "name": "c"}),
        ("/:a-:b", "/x-y-z", {"a": "x", "b": "y-z", "$1": "x", "$2": "y-z"}),
        (
            "/files/:name.:ext",
            "/files/a.tar.gz",
            {"name": "a", "ext": "tar.gz", "$1": "a", "$2": "tar.gz"},
        ),
        ("/price\\:now", "/price:now", {}),
        ("/\\(raw\\)", "/(raw)", {}),
        ("/img/:file(.*\\.png)", "/img/a/b.png", {"file": "a/b.png", "$1": "a/b.png"}),
        ("/v/:id((?:ab|cd)\\d)", "/v/cd4", {"id": "cd4", "$1": "cd4"}),
    ],
)
def test_path_to_regexp(source: str, path: str, captures: dict[str, str] | None) -> None:
    assert compile_source(source).match(path) == captures


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("blog", "must be a path starting with /"),
        ("/a/" + "x" * 4096, "longer than 4096"),
        ("/a\\", "lone \\"),
        ("/{a}", "{ } groups"),
        ("/a*", "no parameter before it"),
        ("/:", "without a parameter name"),
        ("/:a/:a", "names the parameter :a twice"),
        ("/(?x)", "starting with '?'"),
        ("/:a((x))", "capturing group inside"),
        ("/:a(x", "unbalanced"),
        ("/:a()", "empty pattern"),
        ("/:a((?=x).)", "lookaround"),
        ("/:a(\\1)", "backreference"),
        ("/:a((?:a+)+)", "exponential"),
        ("/:a((?:a|aa)*)", "exponential"),
        ("/:a(.*)/:b(.*)/:c(.*)", "more than 2 unbounded"),
        ("/:a(\\d+)+", "whose pattern has a repeat"),
        ("/:a([a-z)", "unterminated ["),
        ("/:a(a{2,1})", "not a valid"),
        ("/:a:b", "needs text between two parameters (before :b)"),
        ("/(.*)(.*)", "needs text between two parameters (before (.*))"),
    ],
)
def test_refused_sources(source: str, reason: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_source(source)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "translated", "unbounded"),
    [
        ("a+b*", "a+b*", 2),
        ("x{2,}", "x{2,}", 1),
        ("x{2,4}y?", "x{2,4}y?", 0),
        (".*?", ".*?", 1),
        ("[)(|*]+", "[)(|*]+", 1),
        ("[]a]", "[]a]", 0),
        ("[^]a]", "[^]a]", 0),
        ("(?<ver>v\\d)", "(?P<ver>v\\d)", 0),
        ("(plain)", "(plain)", 0),
        ("{}", "{}", 0),
    ],
)
def test_has_value_patterns(pattern: str, translated: str, unbounded: int) -> None:
    assert check_pattern(pattern, named=True) == (translated, unbounded)


@pytest.mark.parametrize(
    "pattern", ["x" * 513, "[[a]", "a)", "(a", "a\\", "(?i)a", "\\k<a>", "[a\\]", "(?P=a)"]
)
def test_refused_value_patterns(pattern: str) -> None:
    with pytest.raises(PatternError):
        check_pattern(pattern, named=True)


def test_a_parameter_pattern_may_not_capture() -> None:
    with pytest.raises(PatternError, match="capturing group"):
        check_pattern("(x)")
