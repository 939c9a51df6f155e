"""netlify.toml read as a Scale Mesh config: `[build]`, the `[context.*]` that apply to the
build's target and branch, `[[redirects]]` and `[[headers]]`; what is not applied is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.siteconfig import read, refusal

CONTEXTS = """\
[build]
  base = "site"
  publish = "public"
  command = "npm run build"
  ignore = "git diff --quiet $CACHED_COMMIT_REF $COMMIT_REF ."
  [build.environment]
    NODE_VERSION = "22"
    API_URL = "https://api.example.com"
    RETRIES = 3
    VERBOSE = true

[context.production]
  command = "npm run build:prod"
  [context.production.environment]
    API_URL = "https://prod.example.com"

[context.deploy-preview]
  command = "npm run build:preview"
  environment = { API_URL = "https://preview.example.com" }

[context.branch-deploy]
  publish = "public-branch"
  environment = { BRANCHY = "1" }

[context.staging]
  command = "npm run build:staging"
  environment = { API_URL = "https://staging.example.com" }

[context."feature/x"]
  environment = { FEATURE = "x" }
"""

CONTEXT_CASES: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    (
        "production",
        "main",
        {"command": "npm run build:prod", "publish": "public"},
        {
            "NODE_VERSION": "build",
            "API_URL": "production",
            "RETRIES": "build",
            "VERBOSE": "build",
        },
    ),
    (
        "production",
        "staging",  # a production build takes [context.production], whatever its branch
        {"command": "npm run build:prod", "publish": "public"},
        {"NODE_VERSION": "build", "API_URL": "production", "RETRIES": "build", "VERBOSE": "build"},
    ),
    (
        "preview",
        "other",
        {"command": "npm run build:preview", "publish": "public-branch"},
        {
            "NODE_VERSION": "build",
            "API_URL": "deploy-preview",
            "RETRIES": "build",
            "VERBOSE": "build",
            "BRANCHY": "branch-deploy",
        },
    ),
    (
        "preview",
        "staging",
        {"command": "npm run build:staging", "publish": "public-branch"},
        {
            "NODE_VERSION": "build",
            "API_URL": "branch:staging",
            "RETRIES": "build",
            "VERBOSE": "build",
            "BRANCHY": "branch-deploy",
        },
    ),
    (
        "preview",
        "feature/x",
        {"command": "npm run build:preview", "publish": "public-branch"},
        {
            "NODE_VERSION": "build",
            "API_URL": "deploy-preview",
            "RETRIES": "build",
            "VERBOSE": "build",
            "BRANCHY": "branch-deploy",
            "FEATURE": "branch:feature/x",
        },
    ),
]


@pytest.mark.parametrize(("target", "branch", "settings", "scopes"), CONTEXT_CASES)
def test_contexts_resolve_for_the_target_and_branch(
    tmp_path: Path, target: str, branch: str, settings: dict[str, Any], scopes: dict[str, str]
) -> None:
    config = read(tmp_path, {"netlify.toml": CONTEXTS}, target=target, branch=branch)

    assert config.source == "netlify.toml"
    assert config.root_directory == "site"
    assert config.build_command == settings["command"]
    assert config.output_directory == settings["publish"]
    assert config.ignore_command == "git diff --quiet $CACHED_COMMIT_REF $COMMIT_REF ."
    assert config.node_version == "22"
    assert dict(config.env_scopes) == scopes
    assert config.env["RETRIES"] == "3"
    assert config.env["VERBOSE"] == "true"
    assert config.warnings == ()
    assert config.rules is None


REDIRECTS = """\
[[redirects]]
  from = "/old/*"
  to = "/new/:splat"

[[redirects]]
  from = "/api/*"
  to = "/api-docs/:splat"
  status = 200
  force = true

[[redirects]]
  from = "/de/*"
  to = "/german/:splat"
  conditions = {Language = ["de"]}

[[redirects]]
  from = "/store"
  to = "/store/:id"
  status = 302
  query = {id = ":id", ref = "mail"}

[[redirects]]
  from = "/beta"
  to = "/beta/index.html"
  status = 200
  conditions = {Cookie = ["beta"]}

[[redirects]]
  from = "https://old.example.com/*"
  to = "https://example.com/:splat"

[[redirects]]
  from = "/ab"
  to = "/b"
  conditions = {Cookie = ["a", "b"]}

[[redirects]]
  from = "/signed"
  to = "/s"
  signed = "SECRET_VAR"

[[redirects]]
  from = "/*"
  to = "/index.html"
  status = 404

[[headers]]
  for = "/*"
  [headers.values]
    X-Frame-Options = "DENY"
    Content-Security-Policy = '''
      default-src 'self';
      img-src *
    '''

[[headers]]
  for = "/assets/*"
  [headers.values]
    Cache-Control = "public, max-age=31536000"

[functions]
  directory = "netlify/functions"

[[plugins]]
  package = "@netlify/plugin-lighthouse"

[[edge_functions]]
  path = "/geo"
  function = "geo"

[dev]
  command = "npm start"

[build.processing]
  skip_processing = true

[context.dev]
  command = "x"
"""


def test_redirects_and_headers_become_netlify_rules(tmp_path: Path) -> None:
    config = read(tmp_path, {"netlify.toml": REDIRECTS})

    assert config.rules == {
        "semantics": "netlify",
        "source": "netlify.toml",
        "clean_urls": False,
        "trailing_slash": None,
        "redirects": [
            {"source": "/old/*", "destination": "/new/:splat", "status": 301, "force": False},
            {
                "source": "/api/*",
                "destination": "/api-docs/:splat",
                "status": 200,
                "force": True,
            },
            {
                "source": "/store",
                "destination": "/store/:id",
                "status": 302,
                "force": False,
                "has": [
                    {"type": "query", "key": "id", "value": "(?<id>.*)"},
                    {"type": "query", "key": "ref", "value": "mail"},
                ],
            },
            {
                "source": "/beta",
                "destination": "/beta/index.html",
                "status": 200,
                "force": False,
                "has": [{"type": "cookie", "key": "beta"}],
            },
            {"source": "/signed", "destination": "/s", "status": 301, "force": False},
            {"source": "/*", "destination": "/index.html", "status": 404, "force": False},
        ],
        "rewrites": [],
        "headers": [
            {
                "source": "/*",
                "headers": [
                    ["X-Frame-Options", "DENY"],
                    ["Content-Security-Policy", "default-src 'self';, img-src *"],
                ],
            },
            {"source": "/assets/*", "headers": [["Cache-Control", "public, max-age=31536000"]]},
        ],
    }
    # The redirects not applied keep their own numbers out of the others' messages.
    assert config.rule_positions["redirects"] == (
        ("redirects[0]", 1),
        ("redirects[1]", 5),
        ("redirects[3]", 16),
        ("redirects[4]", 22),
        ("redirects[7]", 37),
        ("redirects[8]", 42),
    )
    assert config.rule_positions["headers"] == (("headers[0]", 47), ("headers[1]", 56))


def test_what_is_not_applied_is_named_with_its_line(tmp_path: Path) -> None:
    config = read(tmp_path, {"netlify.toml": REDIRECTS})

    assert config.warnings == (
        "netlify.toml:61: functions (Netlify Functions) are not supported: "
        "Scale Mesh serves static files only",
        "netlify.toml:64: plugins (build plugins) are not run",
        "netlify.toml:67: edge_functions (Edge Functions) are not supported; not applied",
        "netlify.toml:71: dev is for `netlify dev` only; not used",
        "netlify.toml:74: build.processing (post processing) is not done; files are served as "
        "built",
        "netlify.toml:77: context.dev is for `netlify dev` only; not used",
        "netlify.toml:14: redirects[2].conditions.Language is a condition Scale Mesh cannot "
        "evaluate; this redirect is not applied",
        "netlify.toml:29: redirects[5].from is a redirect of another host (domain-level), "
        "which Scale Mesh does not apply",
        "netlify.toml:35: redirects[6].conditions.Cookie lists several cookies (any of them), "
        "which Scale Mesh cannot evaluate; this redirect is not applied",
        "netlify.toml:40: redirects[7].signed is not supported by Scale Mesh; ignored",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[build\n",
            "netlify.toml:1: is not valid TOML: Expected ']' at the end of a table declaration",
        ),
        ("a = 1\na = 2\n", "netlify.toml:2: is not valid TOML: Cannot overwrite a value"),
        ("[build]\npublish = 1\n", "netlify.toml:2: build.publish must be a string"),
        (
            '[build]\nbase = "/srv"\n',
            "netlify.toml:2: build.base must be a path relative to the repository, not an "
            "absolute one",
        ),
        ('[build]\ncommand = ""\n', "netlify.toml:2: build.command must not be empty"),
        ("[build]\nenvironment = 1\n", "netlify.toml:2: build.environment must be a table"),
        (
            '[build.environment]\nAWS_KEY = "x"\n',
            "netlify.toml:2: build.environment.AWS_KEY is reserved by Scale Mesh; pick another "
            "name",
        ),
        (
            "[context.production.environment]\nX = [1]\n",
            "netlify.toml:2: context.production.environment.X must be a string",
        ),
        ("build = 1\n", "netlify.toml:1: build must be an object"),
        ('[[redirects]]\nto = "/b"\n', "netlify.toml:1: redirects[0] needs from"),
        (
            # Netlify's own 410 and 451 pages are not served: refused at the rule's line, as
            # the proxy's compiled rules would refuse them.
            '[[redirects]]\nfrom = "/a"\nto = "/b"\nstatus = 410\n',
            "netlify.toml:4: redirects[0].status must be one of 200, 301, 302, 303, 307, 308, 404",
        ),
        (
            '[[redirects]]\nfrom = "/a"\nto = "/b"\nstatus = 418\n',
            "netlify.toml:4: redirects[0].status must be one of 200, 301, 302, 303, 307, 308, 404",
        ),
        (
            '[[redirects]]\nfrom = "/a"\nto = "/b"\nforce = "yes"\n',
            "netlify.toml:4: redirects[0].force must be true or false",
        ),
        (
            '[[redirects]]\nfrom = "/a"\nto = "/b"\nquery = {"" = "x"}\n',
            'netlify.toml:4: redirects[0].query[""] is not a query parameter name',
        ),
        ('[[headers]]\nfor = "/a"\n', "netlify.toml:1: headers[0] needs for and values"),
        (
            '[[headers]]\nfor = "a"\n[headers.values]\nX = "1"\n',
            "netlify.toml:2: headers[0].for must start with /",
        ),
        (
            '[[headers]]\nfor = "/a"\n[headers.values]\n"Bad Name" = "1"\n',
            'netlify.toml:4: headers[0].values["Bad Name"] is not a valid header name',
        ),
        (
            '[[headers]]\nfor = "/a"\nvalues = {}\n',
            "netlify.toml:3: headers[0].values must set at least one header",
        ),
        ('redirects = [{from = "/a"}]\n', "netlify.toml:1: redirects[0] needs to"),
    ],
)
def test_mistakes_name_the_field_and_line(tmp_path: Path, text: str, message: str) -> None:
    assert refusal(tmp_path, {"netlify.toml": text}) == message
