"""A manifest's `rules` object as the builder writes it, for Vercel's and Netlify's semantics."""

from __future__ import annotations

from typing import Any


def vercel(**fields: Any) -> dict[str, Any]:
    """`rules` from a vercel.json (or scalemesh.json): `redirects=[...]`, `clean_urls=True`..."""
    return {"semantics": "vercel", "source": "vercel.json", **fields}


def netlify(**fields: Any) -> dict[str, Any]:
    """`rules` from a netlify.toml."""
    return {"semantics": "netlify", "source": "netlify.toml", **fields}
