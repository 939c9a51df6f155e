"""What the PR comment says of a torn-down preview (its row in `app.reporting.comment`)."""

from __future__ import annotations


def removed_row_text() -> str:
    """The Preview cell of a removed preview: what happened, and how to bring it back."""
    return "Preview removed (closed, or idle past its time to live); push again to bring it back"
