"""`builder.siterules.compile_rules`: what fails a build, and the 2,048-rule limit."""

from __future__ import annotations

from typing import Any

import pytest

from builder.siterules import MAX_RULES, RequestView, RuleError, Rules, compile_rules
from tests.support.site_rules import netlify, vercel

# --- compile_rules: what fails a build -----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind", "index", "message"),
    [
        ([], "rules", None, "must be an object"),
        ({"semantics": "apache"}, "semantics", None, "'vercel' or 'netlify'"),
        (vercel(clean_urls="yes"), "clean_urls", None, "true or false"),
        (vercel(trailing_slash=1), "trailing_slash", None, "true, false or null"),
        (vercel(redirects={}), "redirects", None, "must be a list"),
        (vercel(redirects=["/a"]), "redirects", 0, "must be an object"),
        (vercel(redirects=[{"destination": "/b"}]), "redirects", 0, "source must be"),
        (vercel(redirects=[{"source": "/a"}]), "redirects", 0, "destination must be"),
        (
            vercel(redirects=[{"source": "/a", "destination": "b"}]),
            "redirects",
            0,
            "starting with /",
        ),
        (
            vercel(redirects=[{"source": "/a", "destination": "/" + "b" * 4096}]),
            "redirects",
            0,
            "longer",
        ),
        (vercel(redirects=[{"source": "/a", "destination": "/b\n"}]), "redirects", 0, "control"),
        (
            vercel(redirects=[{"source": "/a", "destination": "/b", "status": 200}]),
            "redirects",
            0,
            "301, 302",
        ),
        (
            vercel(redirects=[{"source": "/a", "destination": "/b", "status": True}]),
            "redirects",
            0,
            "status",
        ),
        (
            vercel(redirects=[{"source": "/a", "destination": "/b", "force": 1}]),
            "redirects",
            0,
            "force",
        ),
        (
            vercel(redirects=[{"source": "/:a(", "destination": "/b"}]),
            "redirects",
            0,
            "source '/:a('",
        ),
        (
            vercel(rewrites=[{"source": "/api/:p*", "destination": "https://api.example/:p*"}]),
            "rewrites",
            0,
            "may not point at another site",
        ),
        (
            netlify(
                redirects=[{"source": "/a", "destination": "https://x.example/", "status": 200}]
            ),
            "redirects",
            0,
            "another site",
        ),
        (
            netlify(redirects=[{"source": "/a/*/b", "destination": "/c"}]),
            "redirects",
            0,
            "* only at its end",
        ),
        (
            netlify(redirects=[{"source": "a", "destination": "/c"}]),
            "redirects",
            0,
            "starting with /",
        ),
        (vercel(headers=[{"source": "/(.*)", "headers": []}]), "headers", 0, "non-empty list"),
        (
            vercel(headers=[{"source": "/(.*)", "headers": [["X-A"]]}]),
            "headers",
            0,
            "[name, value] strings",
        ),
        (
            vercel(headers=[{"source": "/(.*)", "headers": [["Set-Cookie", "a=1"]]}]),
            "headers",
            0,
            "may not set or clear cookies",
        ),
        (
            vercel(headers=[{"source": "/(.*)", "headers": [["set-COOKIE", "a=1"]]}]),
            "headers",
            0,
            "cookies",
        ),
        (
            netlify(headers=[{"source": "/*", "headers": [["Clear-Site-Data", '"cookies"']]}]),
            "headers",
            0,
            "cookies",
        ),
        (
            vercel(headers=[{"source": "/(.*)", "headers": [["Content-Length", "1"]]}]),
            "headers",
            0,
            "set by the proxy",
        ),
        (
            vercel(headers=[{"source": "/(.*)", "headers": [["X A", "1"]]}]),
            "headers",
            0,
            "not a header name",
        ),
        (
            vercel(headers=[{"source": "/(.*)", "headers": [["X-A", "caf\u00e9"]]}]),
            "headers",
            0,
            "printable ASCII",
        ),
        (
            vercel(headers=[{"source": "/(.*)", "headers": [["X-A", "1"]], "has": {}}]),
            "headers",
            0,
            "has must be a list",
        ),
        (
            vercel(headers=[{"source": "/(.*)", "headers": [["X-A", "1"]], "has": [1]}]),
            "headers",
            0,
            "has[0] must be an object",
        ),
        (
            vercel(
                headers=[{"source": "/(.*)", "headers": [["X-A", "1"]], "has": [{"type": "ip"}]}]
            ),
            "headers",
            0,
            "type must be one of",
        ),
        (
            vercel(
                headers=[
                    {"source": "/(.*)", "headers": [["X-A", "1"]], "missing": [{"type": "header"}]}
                ]
            ),
            "headers",
            0,
            "missing[0].key",
        ),
        (
            vercel(
                headers=[{"source": "/(.*)", "headers": [["X-A", "1"]], "has": [{"type": "host"}]}]
            ),
            "headers",
            0,
            "needs a value",
        ),
        (
            vercel(
                headers=[
                    {
                        "source": "/(.*)",
                        "headers": [["X-A", "1"]],
                        "has": [{"type": "query", "key": "a", "value": 1}],
                    }
                ]
            ),
            "headers",
            0,
            "value must be a string",
        ),
        (
            vercel(
                headers=[
                    {
                        "source": "/(.*)",
                        "headers": [["X-A", "1"]],
                        "has": [{"type": "query", "key": "a", "value": "(a+)+$"}],
                    }
                ]
            ),
            "headers",
            0,
            "exponential",
        ),
        (
            vercel(
                headers=[
                    {
                        "source": "/(.*)",
                        "headers": [["X-A", "1"]],
                        "has": [{"type": "query", "key": "a", "value": "a*b*c*"}],
                    }
                ]
            ),
            "headers",
            0,
            "more than 2 unbounded",
        ),
    ],
)
def test_compile_errors(raw: Any, kind: str, index: int | None, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        compile_rules(raw)
    assert message in caught.value.message
    assert (caught.value.kind, caught.value.index) == (kind, index)
    assert str(caught.value).startswith(kind if index is None else f"{kind}[{index}]: ")


@pytest.mark.parametrize("kind", ["redirects", "rewrites", "headers"])
def test_2048_rules_of_a_kind_compile_and_2049_fail(kind: str) -> None:
    rule: dict[str, Any] = {"source": "/a/:x", "destination": "/b"}
    if kind == "headers":
        rule = {"source": "/a/:x", "headers": [["X-A", "1"]]}
    compiled = compile_rules(vercel(**{kind: [rule] * MAX_RULES}))
    assert len(getattr(compiled, kind)) == 2048
    with pytest.raises(RuleError, match="has 2,049 rules; at most 2,048") as caught:
        compile_rules(vercel(**{kind: [rule] * (MAX_RULES + 1)}))
    assert (caught.value.kind, caught.value.index) == (kind, None)


def test_empty_rules_compile_to_nothing() -> None:
    compiled = compile_rules({"semantics": "netlify"})
    assert (compiled.redirects, compiled.rewrites, compiled.headers) == ((), (), ())
    assert not compiled.reads_headers
    assert compiled.match_redirect(RequestView("/")) is None


def test_rules_files_beyond_the_limit_keep_the_first_2048() -> None:
    redirects = "".join(f"/r{n} /t{n}\n" for n in range(MAX_RULES + 3))
    headers = "".join(f"/h{n}\n  X-N: {n}\n" for n in range(MAX_RULES + 1))
    rules = Rules.parse(redirects, headers)
    assert (len(rules.redirects), len(rules.headers)) == (MAX_RULES, MAX_RULES)
    assert rules.redirects[-1].source == "/r2047"
    assert rules.errors == (
        "_redirects: only the first 2,048 of 2,051 rules count",
        "_headers: only the first 2,048 of 2,049 rules count",
    )


def test_only_four_rules_may_hold_two_unbounded_patterns() -> None:
    costly = [{"source": f"/(.*)-(.*)/{n}", "destination": "/"} for n in range(4)]
    cheap = [{"source": "/(.*)", "destination": "/"}, {"source": "/:a/:b", "destination": "/"}]
    assert len(compile_rules(vercel(rewrites=costly + cheap)).rewrites) == 6
    netlify_costly = {"source": "/*/*.png", "headers": [["X-A", "1"]]}
    with pytest.raises(RuleError) as caught:
        compile_rules(
            vercel(rewrites=costly + cheap, headers=[netlify_costly | {"source": "/(.*).(.*)"}])
        )
    assert (caught.value.kind, caught.value.index) == ("headers", 0)
    assert "more than 4 rules have two unbounded patterns" in caught.value.message
    with pytest.raises(RuleError, match="more than 4"):
        compile_rules(netlify(headers=[netlify_costly] * 5))


def test_a_headers_file_keeps_its_first_four_paths_with_two_stars() -> None:
    text = "".join(f"/{n}/*/*.png\n  X-N: {n}\n" for n in range(6)) + "/*\n  X-All: 1\n"
    rules = Rules.parse(headers_text=text)
    assert [rule.source for rule in rules.headers] == [
        "/0/*/*.png",
        "/1/*/*.png",
        "/2/*/*.png",
        "/3/*/*.png",
        "/*",
    ]
    assert rules.errors == (
        "_headers: only the first 4 paths with two * count (2 more are skipped)",
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/a/*/*/*", "may use * at most 2 times"),
        ("/:a:b", "needs text between :a and :b"),
        ("/:a*", "needs text between :a and *"),
    ],
)
def test_netlify_header_paths_that_could_match_slowly(source: str, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        compile_rules(netlify(headers=[{"source": source, "headers": [["X-A", "1"]]}]))
    assert message in caught.value.message
    assert Rules.parse(headers_text=f"{source}\n  X-A: 1\n").errors == (
        f"_headers:1: the path {message}",
    )


COOKIE_SPELLINGS = [
    "Set-Cookie",
    "set-cookie",
    "SET-COOKIE",
    "sEt-CoOkIe",
    "Set-Cookie2",
    "Clear-Site-Data",
    "clear-site-data",
    "CLEAR-SITE-DATA",
]


@pytest.mark.parametrize("name", COOKIE_SPELLINGS)
def test_no_rule_of_any_file_sets_or_clears_cookies_in_any_spelling(name: str) -> None:
    # Deployments share the root domain: a cookie would reach other tenants and the dashboard.
    for rules in (
        vercel(headers=[{"source": "/(.*)", "headers": [[name, "a=1; Domain=localhost"]]}]),
        netlify(headers=[{"source": "/*", "headers": [[name, "a=1"]]}]),
    ):
        with pytest.raises(RuleError, match="may not set or clear cookies"):
            compile_rules(rules)
    parsed = Rules.parse(headers_text=f"/*\n  {name}: a=1\n  X-Kept: 1\n")
    assert [rule.headers for rule in parsed.headers] == [(("X-Kept", "1"),)]
    assert [error.split(": ", 1)[1] for error in parsed.errors] == [
        f"{name} is refused: a deployment may not set or clear cookies"
    ]
