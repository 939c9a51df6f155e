"""`builder.siterules`: config-file rules checked by `compile_rules` and matched on requests."""

from __future__ import annotations

from typing import Any

from builder.siterules import RequestView, compile_rules
from builder.siterules.safety import MAX_MATCHED
from tests.support.site_rules import netlify, vercel

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


def test_a_repeated_cookie_or_query_parameter_counts_by_its_first_value() -> None:
    def rule(kind: str, destination: str) -> dict[str, Any]:
        return {
            "source": "/a",
            "destination": destination,
            "status": 307,
            "has": [{"type": kind, "key": "v", "value": "1"}],
        }

    compiled = compile_rules(vercel(redirects=[rule("cookie", "/cookie"), rule("query", "/q")]))

    def target(**fields: Any) -> str | None:
        found = compiled.match_redirect(RequestView("/a", **fields))
        return None if found is None else found.target

    # One request, asked by both rules: its cookies and query are read once, the same way.
    assert target(query="v=1&v=2", headers={"cookie": "v=2; v=1"}) == "/q"
    assert target(query="v=2&v=1", headers={"cookie": "v=1; v=2"}) == "/cookie"
    assert target(query="v=2", headers={"cookie": "v; v=2"}) is None


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
