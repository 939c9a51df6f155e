"""The PR comment's "what changed" sections: one collapsible `<details>` per project, from its
diff against production (`app.deployments.diffs`), fitted into GitHub's comment limit.

File names come from the build, so they are hostile text: each is shown in a code span long
enough to hold its backticks, control and format characters replaced, cut to `NAME_CHARS`, so
no name can end the span, the list or the `<details>`, nor become a link, a mention or HTML.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from app.deployments.diff import AssetChange, Listed, ManifestDiff, Sizes
from app.deployments.diffs import ProductionDiff
from app.errors import UserError

COMMENT_LIMIT = 65_536
"""GitHub refuses a longer comment body."""
MARGIN = 1024
"""Kept free below the limit: GitHub may count some characters as more than one."""
NAME_CHARS = 100
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_BACKTICKS = re.compile(r"`+")
_UNITS = ("KiB", "MiB", "GiB")
UNKNOWN = "compressed size unknown"


@dataclass(frozen=True, slots=True)
class Section:
    """One project's section, in full and in short (the summary and a link to its page)."""

    full: str
    short: str


def section(slug: str, page_url: str, found: ProductionDiff | UserError) -> Section:
    """The section of project `slug`, from its diff or the reason there is none."""
    if isinstance(found, UserError):
        text = _details(f"<b>{html.escape(slug)}</b>: not compared", [plain(found.detail)])
        return Section(text, text)
    d = found.diff
    head = f"<b>{html.escape(slug)}</b>: {html.escape(_summary(d))}"
    link = f"[Full diff on the deployment page]({page_url})"
    body = [f"Compared with production (deployment `{found.production_id}`).", *_tables(d), link]
    return Section(_details(head, body), _details(head, [link]))


def fit(sections: Sequence[Section], budget: int) -> list[str]:
    """The sections within `budget` characters: all in short if they fit, then as many as
    fit in full, in order; past that, a line saying how many are left out."""
    shorts = sum(len(s.short) + 2 for s in sections)
    if shorts > budget:
        shown: list[str] = []
        spent = 0
        note = 80  # room kept for the closing line
        for s in sections:  # pragma: no branch - the shorts overflow: it always breaks
            if spent + len(s.short) + 2 > budget - note:
                break
            shown.append(s.short)
            spent += len(s.short) + 2
        left = len(sections) - len(shown)
        return [*shown, f"_{left} more projects' changes are on their deployment pages._"]
    chosen = [s.short for s in sections]
    spare = budget - shorts
    for index, s in enumerate(sections):
        extra = len(s.full) - len(s.short)
        if extra <= spare:
            chosen[index] = s.full
            spare -= extra
    return chosen


def size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    value, unit = count / 1024, 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.1f} {_UNITS[unit]}"


def signed(delta: int) -> str:
    return "±0 B" if delta == 0 else ("+" if delta > 0 else "-") + size(abs(delta))


def code(name: str) -> str:
    """`name` as a code span that shows it literally, whatever it holds."""
    shown = "".join(
        "\N{REPLACEMENT CHARACTER}" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
        for ch in name[: NAME_CHARS + 1]
    )
    if len(shown) > NAME_CHARS:
        shown = shown[:NAME_CHARS] + "…"
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") or shown.startswith(" ") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def plain(text: str) -> str:
    """Text shown as itself in markdown: every ASCII punctuation mark escaped, no line breaks."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def _details(summary: str, body: list[str]) -> str:
    return "\n".join([f"<details><summary>{summary}</summary>", "", *body, "", "</details>"])


def _summary(d: ManifestDiff) -> str:
    if d.identical:
        files = "no files changed"
    else:
        files = f"{d.added.count} added, {d.removed.count} removed, {d.changed.count} changed"
    if d.before.br is not None and d.after.br is not None:
        sent = f"brotli {size(d.before.br)} → {size(d.after.br)}"
    else:
        sent = f"raw {size(d.before.raw)} → {size(d.after.raw)}"
    return f"{files} · {sent}"


def _total(sizes: Sizes) -> str:
    return UNKNOWN if sizes.br is None else size(sizes.br)


def _tables(d: ManifestDiff) -> list[str]:
    br_change = (
        UNKNOWN if d.before.br is None or d.after.br is None else signed(d.after.br - d.before.br)
    )
    lines = [
        "",
        "| Transfer size | Production | This preview | Change |",
        "| :--- | ---: | ---: | ---: |",
        f"| Brotli | {_total(d.before)} | {_total(d.after)} | {br_change} |",
        f"| Raw | {size(d.before.raw)} | {size(d.after.raw)} | "
        f"{signed(d.after.raw - d.before.raw)} |",
        "",
    ]
    listed = [
        ("Added", d.added),
        ("Removed", d.removed),
        ("Changed", d.changed),
        ("Pages added", d.pages_added),
        ("Pages removed", d.pages_removed),
    ]
    lines += [_listed(label, names) for label, names in listed if names.count]
    if d.largest:
        lines += ["", "**Largest changes**", "", *(_asset(change) for change in d.largest)]
    return [*lines, ""]


def _listed(label: str, listed: Listed) -> str:
    more = listed.count - len(listed.names)
    tail = f" and {more} more" if more else ""
    return f"- **{label} ({listed.count}):** {', '.join(map(code, listed.names))}{tail}"


def _asset(change: AssetChange) -> str:
    if change.before is None:
        what = f"added, {size(change.after or 0)}"
    elif change.after is None:
        what = f"removed, {size(change.before)}"
    else:
        what = f"{size(change.before)} → {size(change.after)}"
    br = "" if change.br_delta is None else f"; brotli {signed(change.br_delta)}"
    return f"- {code(change.path)}: {what} ({signed(change.delta)}{br})"
