"""The deployment `bench/proxy.py` measures: its two files, manifest, database rows and storage."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Any

from app import database
from app.settings import Settings
from app.storage import Storage
from app.tables import Alias, Deployment, Project, User
from builder import content
from builder.spec import MANIFEST

LABEL = "web"
HOST = f"{LABEL}.localhost"
INDEX = "index.html"
INDEX_BYTES = 2 * 1024
ASSET_BYTES = 150 * 1024


def make_files(seed: int) -> dict[str, bytes]:
    """A 2 KB page and a 150 KB content-hashed script of compressible, random-ish text."""
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible by seed
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 10)))
        for _ in range(2000)
    ]
    punctuation = ["(", ")", "{", "}", ";", "=>", ".", ",", "=", "\n", "  "]
    script = bytearray()
    while len(script) < ASSET_BYTES:
        token = rng.choice(words) if rng.random() < 0.8 else rng.choice(punctuation)
        script += token.encode() + b" "
    asset = bytes(script[:ASSET_BYTES])
    asset_path = f"assets/app-{hashlib.sha256(asset).hexdigest()[:8]}.js"
    page = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>bench</title>\n<script type="module" src="/{asset_path}"></script>\n'
        "</head>\n<body>\n<main>\n"
    ).encode()
    while len(page) < INDEX_BYTES - 40:
        page += f"<p>{' '.join(rng.choices(words, k=8))}</p>\n".encode()
    page = (page + b"</main>\n</body>\n</html>\n").ljust(INDEX_BYTES, b"\n")[:INDEX_BYTES]
    return {INDEX: page, asset_path: asset}


def manifest(files: Mapping[str, bytes], project_id: int, deployment_id: str) -> dict[str, Any]:
    return {
        "version": 1,
        "deployment_id": deployment_id,
        "project_id": project_id,
        "sha": "b" * 40,
        "framework": "static",
        "output_directory": ".",
        "files": {
            path: {
                "size": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "content_type": content.content_type(path),
                "cache_control": content.cache_control(path),
                "encodings": [],
            }
            for path, body in files.items()
        },
    }


async def ship(storage: Storage, prefix: str, files: Mapping[str, bytes], record: bytes) -> None:
    """Write what the builder would: the files, then the manifest."""
    for path, body in files.items():
        await storage.put(
            prefix + path,
            body,
            content_type=content.content_type(path),
            cache_control=content.cache_control(path),
        )
    await storage.put(prefix + MANIFEST, record, content_type="application/json")


async def seed(settings: Settings, deployment_id: str) -> int:
    """A user, a project `web`, and its ready deployment behind the alias `web`."""
    database.bind(database.make_engine(settings.database))
    no_login = "x"  # not an argon2 hash: nobody logs in as this user
    user = await User.insert(User(email="bench@example.com", password_hash=no_login))
    project = await Project.insert(
        Project(slug=LABEL, name=LABEL, owner=user[0]["id"], git_url="https://x/y.git")
    )
    project_id = int(project[0]["id"])
    await Deployment.insert(
        Deployment(id=deployment_id, project=project_id, sha="b" * 40, state="ready")
    )
    await Alias.insert(Alias(hostname=LABEL, project=project_id, deployment=deployment_id))
    return project_id
