"""scalemesh.json: each mistake refused naming the field and its line, never quoting a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.siteconfig import scalemesh
from builder.siteconfig.nodes import ConfigError
from builder.siteconfig.records import SiteConfig
from builder.siteconfig.rules import check_compiled
from tests.support.siteconfig import read, refusal

# --- errors: the field and its line --------------------------------------------------------------

ERRORS: list[tuple[str, str]] = [
    ("[]", "scalemesh.json:1: the file must be an object"),
    (
        '{\n  "buildComand": "x"\n}',
        "scalemesh.json:2: buildComand is not a known field of scalemesh.json (did you mean "
        "buildCommand?)",
    ),
    ('{\n  "zzz": 1\n}', "scalemesh.json:2: zzz is not a known field of scalemesh.json"),
    ('{"buildCommand": 3}', "scalemesh.json:1: buildCommand must be a string"),
    ('{"buildCommand": ""}', "scalemesh.json:1: buildCommand must not be empty"),
    (
        '{"installCommand": "a\\u0000b"}',
        "scalemesh.json:1: installCommand contains a NUL character",
    ),
    (
        '{"ignoreCommand": "' + "x" * 5000 + '"}',
        "scalemesh.json:1: ignoreCommand is longer than 4,096 characters",
    ),
    (
        '{"outputDirectory": "/etc"}',
        "scalemesh.json:1: outputDirectory must be a path relative to the repository, not an "
        "absolute one",
    ),
    ('{"rootDirectory": ["a"]}', "scalemesh.json:1: rootDirectory must be a string"),
    (
        '{"framework": "Next JS"}',
        "scalemesh.json:1: framework must be a framework name: lower-case letters, digits, - or .",
    ),
    (
        '{"nodeVersion": "' + "1" * 65 + '"}',
        "scalemesh.json:1: nodeVersion is longer than 64 characters",
    ),
    ('{"$schema": 1}', "scalemesh.json:1: $schema must be a string"),
    ('{"watchPaths": "a"}', "scalemesh.json:1: watchPaths must be an array"),
    (
        '{"watchPaths": [\n"a",\n"/b"]}',
        "scalemesh.json:3: watchPaths[1] must be a path relative to the repository, not an "
        "absolute one",
    ),
    ('{"watchPaths": [null]}', "scalemesh.json:1: watchPaths[0] must be a string"),
    (
        '{"cache": [\n".next/cache",\n"../shared"]}',
        "scalemesh.json:3: cache[1] must be a path inside the root directory: not absolute, "
        "no '..'",
    ),
    (
        '{"cache": ["/tmp"]}',
        "scalemesh.json:1: cache[0] must be a path inside the root directory: "
        "not absolute, no '..'",
    ),
    ('{"cleanUrls": "yes"}', "scalemesh.json:1: cleanUrls must be true or false"),
    ('{"trailingSlash": 1}', "scalemesh.json:1: trailingSlash must be true or false"),
    ('{"redirects": {}}', "scalemesh.json:1: redirects must be an array"),
    (
        '{"redirects": [\n  {"source": "/a", "destination": "/b"},\n  {"source": "b", '
        '"destination": "/c"}\n]}',
        "scalemesh.json:3: redirects[1].source must start with /",
    ),
    ('{"redirects": [\n  {"destination": "/b"}\n]}', "scalemesh.json:2: redirects[0] needs source"),
    ('{"redirects": [{"source": "/a"}]}', "scalemesh.json:1: redirects[0] needs destination"),
    (
        '{"redirects": [{"source": "/a", "destination": "/b", "statusCode": 200}]}',
        "scalemesh.json:1: redirects[0].statusCode must be one of 301, 302, 303, 307 or 308",
    ),
    (
        '{"redirects": [{"source": "/a", "destination": "/b", "statusCode": "301"}]}',
        "scalemesh.json:1: redirects[0].statusCode must be a whole number",
    ),
    (
        '{"redirects": [{"source": "/a", "destination": "/b", "statusCode": true}]}',
        "scalemesh.json:1: redirects[0].statusCode must be a whole number",
    ),
    (
        '{"redirects": [{"source": "/a", "destination": "/b", "statusCode": 301, "permanent": '
        "true}]}",
        "scalemesh.json:1: redirects[0].statusCode and permanent cannot both be set: use one",
    ),
    (
        '{"redirects": [{"source": "/a", "destination": "/b", "permanent": "yes"}]}',
        "scalemesh.json:1: redirects[0].permanent must be true or false",
    ),
    (
        '{"redirects": [{"source": "/a", "destination": "/b",\n "locale": false}]}',
        "scalemesh.json:2: redirects[0].locale is not a known field",
    ),
    ('{"redirects": ["/a"]}', "scalemesh.json:1: redirects[0] must be an object"),
    (
        '{"rewrites": [{"source": "/a", "destination": "/b", "permanent": true}]}',
        "scalemesh.json:1: rewrites[0].permanent is not a known field",
    ),
    ('{"headers": [{"source": "/a"}]}', "scalemesh.json:1: headers[0] needs headers"),
    (
        '{"headers": [{"source": "/a", "headers": []}]}',
        "scalemesh.json:1: headers[0].headers must list at least one header",
    ),
    (
        '{"headers": [{"source": "/a", "headers": [{"key": "Bad Name", "value": "x"}]}]}',
        "scalemesh.json:1: headers[0].headers[0].key is not a valid header name",
    ),
    (
        '{"headers": [{"source": "/a", "headers": [{"key": "X-A"}]}]}',
        "scalemesh.json:1: headers[0].headers[0] needs value",
    ),
    (
        '{"headers": [{"source": "/a", "headers": [{"key": "X-A", "value": "a\\r\\nSet-Cookie: '
        'x"}]}]}',
        "scalemesh.json:1: headers[0].headers[0].value must be one line",
    ),
    (
        '{"headers": [{"source": "/a", "headers": [{"key": "X-A", "value": "b", "when": 1}]}]}',
        "scalemesh.json:1: headers[0].headers[0].when is not a known field",
    ),
    (
        '{"rewrites": [{"source": "/a", "destination": "/b", "has": {}}]}',
        "scalemesh.json:1: rewrites[0].has must be an array",
    ),
    (
        '{"rewrites": [{"source": "/a", "destination": "/b", "has": [{"type": "ip", "key": '
        '"x"}]}]}',
        "scalemesh.json:1: rewrites[0].has[0].type must be header, cookie, query or host",
    ),
    (
        '{"rewrites": [{"source": "/a", "destination": "/b", "has": [{"key": "x"}]}]}',
        "scalemesh.json:1: rewrites[0].has[0] needs type",
    ),
    (
        '{"rewrites": [{"source": "/a", "destination": "/b", "has": [{"type": "query"}]}]}',
        "scalemesh.json:1: rewrites[0].has[0] needs key",
    ),
    (
        '{"rewrites": [{"source": "/a", "destination": "/b", "missing": [{"type": "host", "key": '
        '"h"}]}]}',
        "scalemesh.json:1: rewrites[0].missing[0].key is not used by a host condition: give its "
        "value",
    ),
    (
        '{"rewrites": [{"source": "/a", "destination": "/b", "has": [{"type": "host"}]}]}',
        "scalemesh.json:1: rewrites[0].has[0] needs value",
    ),
    ('{"env": []}', "scalemesh.json:1: env must be an object"),
    ('{"env": {"staging": {}}}', "scalemesh.json:1: env.staging is not a known field of env"),
    (
        '{"env": {"production": {"1BAD": "x"}}}',
        'scalemesh.json:1: env.production["1BAD"] is not a valid variable name: letters, digits '
        "and _, not starting with a digit",
    ),
    (
        '{"env": {"production": {"AWS_SECRET_ACCESS_KEY": "x"}}}',
        "scalemesh.json:1: env.production.AWS_SECRET_ACCESS_KEY is reserved by Scale Mesh; pick "
        "another name",
    ),
    (
        '{"env": {"preview": {"PATH": "/tmp"}}}',
        "scalemesh.json:1: env.preview.PATH is reserved by Scale Mesh; pick another name",
    ),
    ('{"env": {"preview": {"N": 1}}}', "scalemesh.json:1: env.preview.N must be a string"),
    ('{"env": {"branches": {"": {}}}}', 'scalemesh.json:1: env.branches[""] is not a branch name'),
    (
        '{"env": {"branches": {"a/b": {"X": null}}}}',
        'scalemesh.json:1: env.branches["a/b"].X must be a string',
    ),
    ('{"previews": {"enabled": "no"}}', "scalemesh.json:1: previews.enabled must be true or false"),
    (
        '{"previews": {"include": []}}',
        "scalemesh.json:1: previews.include is not a known field of previews",
    ),
    (
        '{"previews": {"branches": {"include": [""]}}}',
        "scalemesh.json:1: previews.branches.include[0] must not be empty",
    ),
    (
        '{"previews": {"branches": {"only": []}}}',
        "scalemesh.json:1: previews.branches.only is not a known field of previews.branches",
    ),
    (
        '{\n"a": 1,\n"a": 2}',
        "scalemesh.json:3: is not valid JSON: the key 'a' appears twice in one object",
    ),
    (
        "{\n  // a comment\n}",
        "scalemesh.json:2: is not valid JSON: expected a key in double quotes",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_mistakes_are_refused_naming_field_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    assert refusal(tmp_path, {"scalemesh.json": text}) == message


def test_a_branch_environment_with_a_strange_name_is_quoted_in_messages(tmp_path: Path) -> None:
    name = "é" * 70
    text = '{"env": {"branches": {"' + name + '": []}}}'

    message = refusal(tmp_path, {"scalemesh.json": text})

    assert message == (
        'scalemesh.json:1: env.branches["' + "\\xe9" * 64 + '..."] must be an object'
    )


def test_more_than_2048_rules_of_a_kind_fail_clearly(tmp_path: Path) -> None:
    rules = [{"source": f"/r{i}", "destination": "/"} for i in range(2049)]

    message = refusal(tmp_path, {"scalemesh.json": {"rewrites": rules}})

    assert message == "scalemesh.json:2: rewrites has 2,049 entries; at most 2,048 are allowed"


def test_every_environment_is_checked_whichever_is_used(tmp_path: Path) -> None:
    text = '{"env": {"production": {"OK": "1"}, "branches": {"other": {"BAD-NAME": "x"}}}}'

    with pytest.raises(ConfigError) as caught:
        read(tmp_path, {"scalemesh.json": text}, target="production")

    assert caught.value.line == 1
    assert caught.value.source == "scalemesh.json"
    assert "BAD-NAME" in caught.value.detail


def test_errors_never_quote_values(tmp_path: Path) -> None:
    secret = "hunter2-secret-value"
    texts = [
        '{"buildCommand": {"x": "' + secret + '"}}',
        '{"redirects": [{"source": "' + secret + '", "destination": "/"}]}',
        '{"env": {"preview": {"X": ["' + secret + '"]}}}',
        '["' + secret + '" "x"]',
    ]
    for text in texts:
        assert secret not in refusal(tmp_path, {"scalemesh.json": text})


def test_the_reader_names_the_fields_it_knows() -> None:
    assert set(scalemesh.FIELDS) == {
        "$schema", "buildCommand", "installCommand", "outputDirectory", "rootDirectory",
        "framework", "nodeVersion", "ignoreCommand", "watchPaths", "cache", "cleanUrls",
        "trailingSlash", "redirects", "rewrites", "headers", "env", "previews",
    }  # fmt: skip


# --- what the proxy would refuse fails the build, at the rule's line ----------------------------


def test_a_pattern_the_proxy_cannot_compile_fails_at_its_line(tmp_path: Path) -> None:
    text = (
        '{\n  "rewrites": [\n    {"source": "/a", "destination": "/b"},\n'
        '    {"source": "/(a", "destination": "/b"}\n  ]\n}'
    )

    message = refusal(tmp_path, {"scalemesh.json": text})

    assert message.startswith("scalemesh.json:4: rewrites[1]: source ")


def test_set_cookie_fails_at_its_line(tmp_path: Path) -> None:
    rules = {"headers": [{"source": "/(.*)", "headers": [{"key": "Set-Cookie", "value": "a=b"}]}]}

    message = refusal(tmp_path, {"scalemesh.json": rules})

    assert message.startswith("scalemesh.json:3: headers[0]: ")
    assert "Set-Cookie" in message


def test_a_rewrite_to_another_site_is_refused_in_scalemesh_json(tmp_path: Path) -> None:
    rules = {"rewrites": [{"source": "/api/(.*)", "destination": "https://api.example.com/$1"}]}

    message = refusal(tmp_path, {"scalemesh.json": rules})

    assert message == (
        "scalemesh.json:3: rewrites[0]: a rewrite may not point at another site "
        "(only redirects may)"
    )


def test_a_setting_the_proxy_refuses_is_named_at_its_field() -> None:
    config = SiteConfig(
        source="scalemesh.json", rules={"semantics": "vercel", "clean_urls": "yes"}, lines={}
    )

    with pytest.raises(ConfigError) as caught:
        check_compiled(config)

    assert str(caught.value) == "scalemesh.json: clean_urls: must be true or false"
