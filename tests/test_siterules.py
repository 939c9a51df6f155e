"""`builder.siterules`: config-file rules checked by `compile_rules` and matched on requests."""

from __future__ import annotations

from typing import Any

import pytest

from builder.siterules import MAX_RULES, RequestView, RuleError, compile_rules
from builder.siterules.safety import MAX_MATCHED


def vercel(**fields: Any) -> dict[str, Any]:
    return {"semantics": "vercel", "source": "vercel.json", **fields}


def netlify(**fields: Any) -> dict[str, Any]:
    return {"semantics": "netlify", "source": "netlify.toml", **fields}


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


# --- matching ------------------------------------------------------------------------------


def test_rewrite_passes_unused_parameters_as_query_only_when_none_is_used() -> None:
    compiled = compile_rules(
        vercel(
            rewrites=[
                {"source": "/old-about/:path*", "destination": "/about"},
                {"source": "/shop/:cat/:item", "destination": "/shop.html?c=:cat"},
                {"source": "/q/:term", "destination": "/search.html?x=1"},
                {"source": "/(.*)", "destination": "/index.html"},
            ]
        )
    )
    assert compiled.match_rewrite(RequestView("/old-about/a/b")) == "/about?path=a%2Fb"
    assert compiled.match_rewrite(RequestView("/shop/hats/red")) == "/shop.html?c=hats"
    assert compiled.match_rewrite(RequestView("/q/a b")) == "/search.html?x=1&term=a%20b"
    assert compiled.match_rewrite(RequestView("/z")) == "/index.html"


def test_conditions_on_headers_cookies_query_and_host() -> None:
    compiled = compile_rules(
        vercel(
            redirects=[
                {
                    "source": "/h",
                    "destination": "/ok/:v",
                    "status": 307,
                    "has": [{"type": "header", "key": "X-Ver", "value": "(?<v>v\\d)"}],
                },
                {
                    "source": "/c",
                    "destination": "/ok",
                    "status": 307,
                    "has": [{"type": "cookie", "key": "seen"}],
                    "missing": [{"type": "query", "key": "skip"}],
                },
                {
                    "source": "/host",
                    "destination": "/ok",
                    "status": 307,
                    "has": [{"type": "host", "value": "www\\.web\\.dev"}],
                },
            ]
        )
    )
    assert compiled.reads_headers

    def target(path: str, **fields: Any) -> str | None:
        found = compiled.match_redirect(RequestView(path, **fields))
        return None if found is None else found.target

    assert target("/h", headers={"x-ver": "v2"}) == "/ok/v2"
    assert target("/h", headers={"x-ver": "v22"}) is None
    assert target("/h", headers={"x-ver": "v" * (MAX_MATCHED + 1)}) is None
    assert target("/h") is None
    assert target("/c", headers={"cookie": "a=1; seen=yes"}) == "/ok"
    assert target("/c", headers={"cookie": "a=1; seen"}) is None
    assert target("/c", query="skip=1", headers={"cookie": "seen=1"}) is None
    assert target("/c", query="other=1", headers={"cookie": "seen=1"}) == "/ok"
    assert target("/host", host="www.web.dev:8443") == "/ok"
    assert target("/host", host="web.localhost") is None


def test_paths_longer_than_the_limit_match_no_rule() -> None:
    compiled = compile_rules(vercel(redirects=[{"source": "/(.*)", "destination": "/x"}]))
    assert compiled.match_redirect(RequestView("/" + "a" * MAX_MATCHED)) is None
    assert compiled.match_redirect(RequestView("/" + "a" * (MAX_MATCHED - 2))) is not None


def test_a_port_in_a_destination_is_not_a_parameter() -> None:
    compiled = compile_rules(
        vercel(redirects=[{"source": "/api/(.*)", "destination": "https://x.example:8080/$1"}])
    )
    found = compiled.match_redirect(RequestView("/api/v1"))
    assert found is not None
    assert found.target == "https://x.example:8080/v1"


def test_a_capture_cannot_turn_a_local_destination_into_another_site() -> None:
    compiled = compile_rules(vercel(redirects=[{"source": "/go/(.*)", "destination": "/$1"}]))
    found = compiled.match_redirect(RequestView("/go//evil.example/x"))
    assert found is not None
    assert found.target == "/evil.example/x"


def test_the_worst_patterns_allowed_still_answer() -> None:
    """What the limits still allow, on the longest path a rule is run on (0.03 s measured)."""
    compiled = compile_rules(
        vercel(
            redirects=[
                {"source": "/:a-:b-:c-:d-:e/x", "destination": "/"},
                {"source": "/(.*)-(.*)/x", "destination": "/"},
            ]
        )
    )
    assert compiled.match_redirect(RequestView("/" + "-" * (MAX_MATCHED - 2))) is None
    assert compiled.match_redirect(RequestView("/" + "a-" * (MAX_MATCHED // 2 - 1))) is None


def test_netlify_rules_first_match_shadowing_and_joined_headers() -> None:
    compiled = compile_rules(
        netlify(
            redirects=[
                {"source": "/about", "destination": "/elsewhere"},
                {"source": "/about", "destination": "/forced", "status": 302, "force": True},
                {
                    "source": "/news/*",
                    "destination": "https://n.example:8443/:splat",
                    "status": 302,
                },
            ],
            headers=[
                {"source": "/*", "headers": [["X-Tag", "a"]]},
                {"source": "/*.css", "headers": [["X-Tag", "b"]]},
            ],
        )
    )
    first = compiled.match_redirect(RequestView("/about"))
    assert first is not None
    assert (first.status, first.target, first.is_redirect) == (301, "/elsewhere", True)
    shadowed = compiled.match_redirect(RequestView("/about"), file_exists=True)
    assert shadowed is not None
    assert (shadowed.status, shadowed.target) == (302, "/forced")
    news = compiled.match_redirect(RequestView("/news/a b"))
    assert news is not None
    assert news.target == "https://n.example:8443/a%20b"
    assert compiled.headers_for(RequestView("/s.css")) == [("X-Tag", "a, b")]
    assert compiled.headers_for(RequestView("/")) == [("X-Tag", "a")]


def test_vercel_headers_later_rules_win_and_take_parameters() -> None:
    compiled = compile_rules(
        vercel(
            headers=[
                {"source": "/(.*)", "headers": [["Cache-Control", "no-cache"]]},
                {
                    "source": "/assets/:file",
                    "headers": [["Cache-Control", "max-age=60"], ["X-File", ":file"]],
                },
                {
                    "source": "/admin",
                    "headers": [["X-Admin", "1"]],
                    "missing": [{"type": "cookie", "key": "ok"}],
                },
            ]
        )
    )
    assert compiled.headers_for(RequestView("/assets/a b.js")) == [
        ("Cache-Control", "max-age=60"),
        ("X-File", "a%20b.js"),
    ]
    assert compiled.headers_for(RequestView("/admin")) == [
        ("Cache-Control", "no-cache"),
        ("X-Admin", "1"),
    ]
    ok = RequestView("/admin", headers={"cookie": "ok=1"})
    assert compiled.headers_for(ok) == [("Cache-Control", "no-cache")]
    assert compiled.match_rewrite(ok) is None
