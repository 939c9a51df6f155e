"""netlify.toml's edges: the lines of its keys, empty files, proxies and rules the proxy would
refuse."""

from __future__ import annotations

from pathlib import Path

from builder.siteconfig.netlify import toml_lines
from tests.support.siteconfig import read, refusal


def test_toml_lines_index_arrays_of_tables_and_dotted_keys() -> None:
    text = (
        "# comment\n"
        "[build]\n"
        'command = "x"\n'
        "[[redirects]]\n"
        'from = "/a"\n'
        "[[redirects]]\n"
        "a.b = 1\n"
        "[[headers]]\n"
        "[headers.values]\n"
        "'X-A' = \"1\"\n"
        '"X-B" = "2"\n'
    )

    lines = toml_lines(text)

    assert lines[("build",)] == 2
    assert lines[("build", "command")] == 3
    assert lines[("redirects", 0)] == 4
    assert lines[("redirects", 0, "from")] == 5
    assert lines[("redirects", 1)] == 6
    assert lines[("redirects", 1, "a")] == 7
    assert lines[("redirects", 1, "a", "b")] == 7
    assert lines[("headers", 0, "values")] == 9
    assert lines[("headers", 0, "values", "X-A")] == 10
    assert lines[("headers", 0, "values", "X-B")] == 11


def test_an_empty_netlify_toml_sets_nothing(tmp_path: Path) -> None:
    config = read(tmp_path, {"netlify.toml": ""}, target="production", branch="main")

    assert config.source == "netlify.toml"
    assert config.build_command is None
    assert config.env == {}
    assert config.rules is None


def test_a_proxy_to_another_site_is_named_and_not_applied(tmp_path: Path) -> None:
    text = '[[redirects]]\nfrom = "/api/*"\nto = "https://api.example.com/:splat"\nstatus = 200\n'

    config = read(tmp_path, {"netlify.toml": text})

    assert config.rules is None
    assert config.warnings == (
        "netlify.toml:3: redirects[0].to proxies to another site (a 200 to a URL), which "
        "Scale Mesh does not do; this rule is not applied",
    )


def test_a_rule_the_proxy_would_refuse_fails_at_its_line(tmp_path: Path) -> None:
    text = (
        '[[redirects]]\nfrom = "https://other.example/*"\nto = "/"\n\n'
        '[[headers]]\nfor = "/*"\n[headers.values]\nSet-Cookie = "a=b"\n'
    )

    message = refusal(tmp_path, {"netlify.toml": text})

    assert message.startswith("netlify.toml:5: headers[0]: ")
    assert "Set-Cookie" in message
