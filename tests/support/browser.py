"""Debian's Chromium, headless, driven by Playwright (which never downloads a browser here)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
"""Screenshots (git-ignored); some are copied to `docs/`."""
CHROMIUM_ARGS = [
    "--no-sandbox",  # the suite runs as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium(wait_ms: int, extra_args: Sequence[str] = ()) -> Iterator[Browser]:
    """A headless Chromium; Playwright's expectations wait up to `wait_ms` each. `extra_args`
    add to its command line (e.g. `--host-resolver-rules` for a custom domain)."""
    if not CHROMIUM.exists():  # .ci/run installs it; never download one
        pytest.skip("/usr/bin/chromium is not installed")
    expect.set_options(timeout=wait_ms)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args], headless=True
        )
        yield launched
        launched.close()
