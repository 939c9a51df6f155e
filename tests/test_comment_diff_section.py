"""The PR comment's "what changed" sections (`app.reporting.diff_section`): the text, hostile
file names shown literally, and many projects fitted under GitHub's limit."""

from __future__ import annotations

import json

import pytest

from app.deployments.diff import diff
from app.deployments.diffs import ProductionDiff
from app.errors import ErrorCode, UserError
from app.reporting.diff_section import (
    COMMENT_LIMIT,
    NAME_CHARS,
    Section,
    code,
    fit,
    plain,
    section,
    signed,
    size,
)

PAGE = "http://localhost:8000/deployments/abc"


def files(**sizes: tuple[int, str]) -> bytes:
    return json.dumps(
        {
            "files": {
                name: {"size": n, "sha256": sha, "br_size": n // 3, "encodings": ["br"]}
                for name, (n, sha) in sizes.items()
            }
        }
    ).encode()


def found(before: bytes, after: bytes) -> ProductionDiff:
    return ProductionDiff("preview-id", "production-id", diff(before, after))


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 << 20, "5.0 MiB"),
        (3 << 30, "3.0 GiB"),
        (5 << 40, "5120.0 GiB"),
    ],
)
def test_sizes(count: int, shown: str) -> None:
    assert size(count) == shown


def test_signed() -> None:
    assert (signed(0), signed(2048), signed(-512)) == ("±0 B", "+2.0 KiB", "-512 B")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("app.js", "`app.js`"),
        ("a`b.js", "``a`b.js``"),
        ("``x", "``` ``x ```"),
        ("x`", "`` x` ``"),
        (" lead.js", "`  lead.js `"),
        (
            "two\n\nlines</details>.js",
            "`two\N{REPLACEMENT CHARACTER}\N{REPLACEMENT CHARACTER}lines</details>.js`",
        ),
        ("bidi\u202eevil.js", "`bidi\N{REPLACEMENT CHARACTER}evil.js`"),
        ("x" * (NAME_CHARS + 50), "`" + "x" * NAME_CHARS + "…`"),
    ],
)
def test_names_are_code_spans_that_nothing_escapes(name: str, shown: str) -> None:
    assert code(name) == shown


def test_plain_text_escapes_markdown() -> None:
    assert plain("Project 'web' [x](y) <b>\n*bold*") == (
        "Project \\'web\\' \\[x\\]\\(y\\) \\<b\\> \\*bold\\*"
    )


def test_a_section_in_full() -> None:
    before = files(**{"app.js": (90_000, "a"), "old.html": (900, "b"), "same.css": (10, "c")})
    after = files(
        **{
            "app.js": (100_000, "z"),
            "new.js": (3000, "d"),
            "same.css": (10, "c"),
            "p.html": (5, "e"),
        }
    )
    s = section("web", PAGE, found(before, after))
    assert s.full.startswith(
        "<details><summary><b>web</b>: 2 added, 1 removed, 1 changed · "
        "brotli 29.6 KiB → 33.5 KiB</summary>\n\n"
    )
    assert "Compared with production (deployment `production-id`)." in s.full
    assert "| Brotli | 29.6 KiB | 33.5 KiB | +3.9 KiB |" in s.full
    assert "| Raw | 88.8 KiB | 100.6 KiB | +11.8 KiB |" in s.full
    assert "- **Added (2):** `new.js`, `p.html`" in s.full
    assert "- **Removed (1):** `old.html`" in s.full
    assert "- **Changed (1):** `app.js`" in s.full
    assert "- **Pages added (1):** `/p.html`" in s.full
    assert "- **Pages removed (1):** `/old.html`" in s.full
    assert "- `app.js`: 87.9 KiB → 97.7 KiB (+9.8 KiB; brotli +3.3 KiB)" in s.full
    assert "- `new.js`: added, 2.9 KiB (+2.9 KiB; brotli +1000 B)" in s.full
    assert "- `old.html`: removed, 900 B (-900 B; brotli -300 B)" in s.full
    assert s.full.endswith(f"[Full diff on the deployment page]({PAGE})\n\n</details>")
    assert s.short == (
        "<details><summary><b>web</b>: 2 added, 1 removed, 1 changed · brotli 29.6 KiB → "
        f"33.5 KiB</summary>\n\n[Full diff on the deployment page]({PAGE})\n\n</details>"
    )


def test_many_names_are_counted_and_cut() -> None:
    after = files(**{f"chunk-{i:02}.js": (10, "a") for i in range(25)})
    s = section("web", PAGE, found(files(), after))
    assert "- **Added (25):** `chunk-00.js`, " in s.full
    assert "`chunk-19.js` and 5 more" in s.full
    assert "chunk-20.js" not in s.full


def test_identical_and_old_manifests() -> None:
    old = json.dumps({"files": {"a.js": {"size": 5000, "sha256": "a", "encodings": ["br"]}}})
    s = section("web", PAGE, found(old.encode(), old.encode()))
    assert "<b>web</b>: no files changed · raw 4.9 KiB → 4.9 KiB</summary>" in s.full
    assert (
        "| Brotli | compressed size unknown | compressed size unknown | compressed size unknown |"
        in s.full
    )
    assert "Largest" not in s.full
    assert "**Added" not in s.full


def test_the_reason_when_there_is_no_diff() -> None:
    refusal = UserError(ErrorCode.DIFF_NO_PRODUCTION, "Project 'web' has no <production> yet.")
    s = section("web", PAGE, refusal)
    assert (
        s.full
        == s.short
        == (
            "<details><summary><b>web</b>: not compared</summary>\n\n"
            "Project \\'web\\' has no \\<production\\> yet\\.\n\n</details>"
        )
    )


def test_hostile_names_cannot_leave_their_span() -> None:
    hostile = "x`</details><img src=x onerror=alert(1)>\n\n# @everyone [a](http://evil)"
    s = section("web", PAGE, found(files(), files(**{hostile: (10, "a")})))
    # The name's twice (listed, largest), inside code spans; and ours, closing the section.
    assert s.full.count("</details>") == 3
    assert s.full.endswith("\n\n</details>")
    assert "\n\n# @everyone" not in s.full
    line = next(line for line in s.full.splitlines() if line.startswith("- **Added"))
    assert line == (
        "- **Added (1):** ``x`</details><img src=x onerror=alert(1)>"
        "\N{REPLACEMENT CHARACTER}\N{REPLACEMENT CHARACTER}# @everyone [a](http://evil)``"
    )


def sections(count: int, full: int, short: int) -> list[Section]:
    return [Section("F" * full, "s" * short) for _ in range(count)]


def test_all_in_full_when_they_fit() -> None:
    assert fit(sections(3, 100, 10), 1000) == ["F" * 100] * 3


def test_full_then_short_in_order() -> None:
    # Shorts take 3 * 12; 164 left lets one full one in, not two.
    assert fit(sections(3, 100, 10), 200) == ["F" * 100, "s" * 10, "s" * 10]


def test_past_even_the_shorts_a_line_says_how_many_are_left() -> None:
    shown = fit(sections(10, 100, 50), 80 + 3 * 52)
    assert shown == ["s" * 50] * 3 + ["_7 more projects' changes are on their deployment pages._"]


@pytest.mark.parametrize("projects", [10, 200, 2000])
def test_many_projects_stay_under_githubs_limit(projects: int) -> None:
    name = "very/long/" * 20
    after = files(**{f"{name}{i}.js": (1000 + i, "a") for i in range(40)})
    one = section("a-rather-long-project-name", PAGE, found(files(), after))
    assert len(one.full) > 3000
    budget = COMMENT_LIMIT - 20_000
    shown = fit([one] * projects, budget)
    assert len("\n\n".join(shown)) <= budget
    if projects * (len(one.short) + 2) > budget:
        assert shown[0] == one.short
        assert shown[-1].endswith("more projects' changes are on their deployment pages._")
    else:
        assert shown[0] == one.full  # the first in full whenever the others fit in short
        assert len(shown) == projects
