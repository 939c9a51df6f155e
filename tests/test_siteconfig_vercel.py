"""vercel.json read as a Scale Mesh config: what a static site's file sets is applied, and each
feature that is not applied is named in a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.siteconfig import read, refusal

TYPICAL = """{
  "$schema": "https://openapi.vercel.sh/vercel.json",
  "version": 2,
  "framework": "vite",
  "buildCommand": "npm run build",
  "installCommand": "npm ci",
  "outputDirectory": "dist",
  "ignoreCommand": "exit 1",
  "cleanUrls": true,
  "trailingSlash": false,
  "redirects": [
    { "source": "/blog/:slug", "destination": "/news/:slug", "permanent": true },
    { "source": "/old", "destination": "/new", "permanent": false },
    { "source": "/x", "destination": "/y", "statusCode": 302 },
    { "source": "/de", "destination": "/de-home",
      "has": [{ "type": "header", "key": "accept-language", "value": "de(.*)" }] }
  ],
  "rewrites": [{ "source": "/(.*)", "destination": "/index.html" }],
  "headers": [
    { "source": "/assets/(.*)",
      "headers": [{ "key": "Cache-Control", "value": "public, max-age=31536000, immutable" }] }
  ]
}
"""


def test_a_typical_static_sites_file_is_read_whole(tmp_path: Path) -> None:
    config = read(tmp_path, {"vercel.json": TYPICAL})

    assert config.source == "vercel.json"
    assert config.framework == "vite"
    assert config.build_command == "npm run build"
    assert config.install_command == "npm ci"
    assert config.output_directory == "dist"
    assert config.ignore_command == "exit 1"
    assert (config.clean_urls, config.trailing_slash) == (True, False)
    assert config.warnings == ()
    assert config.rules is not None
    assert config.rules["semantics"] == "vercel"
    assert config.rules["source"] == "vercel.json"
    assert [(r["source"], r["status"]) for r in config.rules["redirects"]] == [
        ("/blog/:slug", 308),
        ("/old", 307),
        ("/x", 302),
        ("/de", 308),
    ]
    assert config.rules["redirects"][3]["has"] == [
        {"type": "header", "key": "accept-language", "value": "de(.*)"}
    ]
    assert config.rules["rewrites"] == [{"source": "/(.*)", "destination": "/index.html"}]
    assert config.rules["headers"] == [
        {
            "source": "/assets/(.*)",
            "headers": [["Cache-Control", "public, max-age=31536000, immutable"]],
        }
    ]
    assert [line for _, line in config.rule_positions["redirects"]] == [12, 13, 14, 15]
    assert config.rule_positions["rewrites"] == (("rewrites[0]", 18),)


UNSUPPORTED = """{
  "functions": {"api/*.js": {"memory": 1024}},
  "crons": [{"path": "/api/cron", "schedule": "0 5 * * *"}],
  "regions": ["iad1"],
  "images": {"sizes": [256]},
  "routes": [{"src": "/a", "dest": "/b"}],
  "builds": [],
  "env": {"A": "b"},
  "build": {"env": {"A": "b"}},
  "devCommand": "vite",
  "github": {"silent": true},
  "framework": "gatsby",
  "redirects": [{"source": "/a", "destination": "/b", "locale": false}]
}
"""


def test_each_feature_not_applied_is_named(tmp_path: Path) -> None:
    files = {"vercel.json": UNSUPPORTED, "middleware.ts": "export default () => {}"}

    config = read(tmp_path, files)

    assert config.warnings == (
        "vercel.json:2: functions (serverless functions) are not supported: "
        "Scale Mesh serves static files only",
        "vercel.json:3: crons (cron jobs) are not supported; not applied",
        "vercel.json:4: regions do not apply: there are no functions to place",
        "vercel.json:5: images (image optimization) is not supported; images are served as they "
        "are",
        "vercel.json:6: routes (legacy) are not read; use redirects, rewrites and headers",
        "vercel.json:7: builds (legacy) are not read; use buildCommand and outputDirectory",
        "vercel.json:8: env is not read; set the project's env vars, or env in scalemesh.json",
        "vercel.json:9: build (build.env) is not read; set the project's env vars, "
        "or env in scalemesh.json",
        "vercel.json:10: devCommand is for `vercel dev` only; not used",
        "vercel.json:11: github is not supported by Scale Mesh; ignored",
        "vercel.json: middleware.ts (Edge Middleware) is not supported; it does not run",
        "vercel.json:12: framework is not one Scale Mesh builds by name; detection decides",
        "vercel.json:13: redirects[0].locale is not supported by Scale Mesh; ignored",
    )
    assert config.framework is None
    assert config.rules is not None
    assert config.rules["redirects"] == [
        {"source": "/a", "destination": "/b", "status": 308, "force": False}
    ]


@pytest.mark.parametrize(
    ("slug", "framework"),
    [
        ("nextjs", "next"),
        ("docusaurus-2", "docusaurus"),
        ("sveltekit-1", "sveltekit"),
        (None, None),
    ],
)
def test_vercel_framework_slugs_become_detections_names(
    tmp_path: Path, slug: str | None, framework: str | None
) -> None:
    config = read(tmp_path, {"vercel.json": {"framework": slug}})

    assert config.framework == framework
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "vercel.json:1: the file must be an object"),
        ('{\n"outputDirectory": 1}', "vercel.json:2: outputDirectory must be a string"),
        (
            '{"outputDirectory": "/www"}',
            "vercel.json:1: outputDirectory must be a path relative to the repository, not an "
            "absolute one",
        ),
        ('{"buildCommand": false}', "vercel.json:1: buildCommand must be a string"),
        (
            '{"redirects": [{"source": "nope", "destination": "/"}]}',
            "vercel.json:1: redirects[0].source must start with /",
        ),
        (
            '{"headers": [{"source": "/", "headers": [{"key": "X"}]}]}',
            "vercel.json:1: headers[0].headers[0] needs value",
        ),
        ('{"cleanUrls": "true"}', "vercel.json:1: cleanUrls must be true or false"),
        ('{"a": 1,}', "vercel.json:1: is not valid JSON: expected a key in double quotes"),
    ],
)
def test_what_vercel_itself_would_refuse_is_an_error(
    tmp_path: Path, text: str, message: str
) -> None:
    assert refusal(tmp_path, {"vercel.json": text}) == message


def test_an_empty_vercel_json_sets_nothing(tmp_path: Path) -> None:
    config = read(tmp_path, {"vercel.json": "{}"})

    assert config.source == "vercel.json"
    assert config.rules is None
    assert config.warnings == ()


def test_a_proxy_rewrite_is_named_and_not_applied(tmp_path: Path) -> None:
    rewrite = '{"source": "/api/(.*)", "destination": "https://api.example.com/$1"}'
    text = '{\n  "rewrites": [\n    ' + rewrite + "\n  ]\n}"

    config = read(tmp_path, {"vercel.json": text})

    assert config.rules is None
    assert config.warnings == (
        "vercel.json:3: rewrites[0] proxies to another site, which Scale Mesh does not do; "
        "this rewrite is not applied",
    )


def test_an_empty_command_is_left_to_detection_and_said(tmp_path: Path) -> None:
    config = read(
        tmp_path, {"vercel.json": '{\n  "buildCommand": "",\n  "installCommand": "npm i"\n}'}
    )

    assert config.build_command is None
    assert config.install_command == "npm i"
    assert config.warnings == ("vercel.json:2: buildCommand is empty; ignored (detection decides)",)
