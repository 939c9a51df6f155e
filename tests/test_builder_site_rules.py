"""The build log names what the proxy will skip in an output's `_redirects` and `_headers`."""

from __future__ import annotations

from pathlib import Path

from tests.support.builder import run, static_spec


def test_the_upload_step_logs_the_problems_of_the_rules_files(tmp_path: Path) -> None:
    redirects = "/old /new 999\n/ok /fine 302\n" + "".join(f"/x{n}\n" for n in range(25))
    headers = "/*\n  Set-Cookie: a=1\n  X-Frame-Options: DENY\n"
    spec = static_spec(tmp_path, {"_redirects": redirects, "_headers": headers})

    ok, sink = run(spec)

    assert ok
    warnings = [line for line in sink.lines() if line.startswith("Warning: ")]
    assert warnings[0] == (
        "Warning: _redirects:1: unsupported status '999' (the proxy skips this rule)"
    )
    assert len(warnings) == 21
    assert warnings[-1] == "Warning: 7 more problems in _redirects/_headers"
    lines = sink.lines()
    assert lines.index(warnings[-1]) < lines.index("Uploading 4 files from ./")


def test_a_site_without_rules_files_logs_no_warning(tmp_path: Path) -> None:
    ok, sink = run(static_spec(tmp_path))

    assert ok
    assert not [line for line in sink.lines() if line.startswith("Warning: ")]
