"""The Kubernetes manifests in `deploy/k8s`, read for the packaging tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
K8S = ROOT / "deploy" / "k8s"


def load(name: str) -> dict[str, Any]:
    """The one resource in `deploy/k8s/<name>`."""
    documents = list(yaml.safe_load_all((K8S / name).read_text()))
    assert len(documents) == 1, f"{name}: one resource per file"
    document: dict[str, Any] = documents[0]
    return document


def configmap() -> dict[str, str]:
    """The settings every Scale Mesh container gets, from `scalemesh-configmap.yaml`."""
    data: dict[str, str] = load("scalemesh-configmap.yaml")["data"]
    return data
