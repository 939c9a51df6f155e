"""The Kubernetes manifests in deploy/k8s: schema-valid, complete, locked down, and wired up.

Validated offline against the bundled Kubernetes schemas (`kubernetes-validate --strict`), and
rendered with `kubectl kustomize` as `kubectl apply -k deploy/k8s` would.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.cli import build_parser
from app.settings import SECRET_VARIABLES, VARIABLES, Runner, Settings
from tests.support.k8s import K8S, configmap, load

KUSTOMIZATION = K8S / "kustomization.yaml"
SECRET_TEMPLATES = ("scalemesh-secret.yaml", "proxy-secret.yaml", "postgres-secret.yaml")
"""Filled in and applied by hand, never by `apply -k` (it would blank the real values)."""
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
APP_IMAGE = "scalemesh"


def resource_files() -> list[str]:
    return sorted(path.name for path in K8S.glob("*.yaml") if path != KUSTOMIZATION)


@functools.cache
def resources() -> dict[str, dict[str, Any]]:
    """Every resource by file name (parsed once: tests only read it)."""
    return {name: load(name) for name in resource_files()}


def one(kind: str, component: str) -> dict[str, Any]:
    (found,) = (
        resource
        for resource in resources().values()
        if resource["kind"] == kind
        and resource["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    )
    return found


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (found,) = pod_spec(workload)["containers"]
    return found


def workloads() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in resources().items():
        if resource["kind"] in WORKLOAD_KINDS:
            yield name, resource


def test_one_resource_per_file_named_component_kind() -> None:
    for name, resource in resources().items():
        kind = resource["kind"].lower()
        assert name.endswith(f"-{kind}.yaml"), f"{name} holds a {resource['kind']}"
        assert name.removesuffix(f"-{kind}.yaml"), name


def test_kustomization_lists_every_resource_but_the_secret_templates() -> None:
    listed = yaml.safe_load(KUSTOMIZATION.read_text())["resources"]

    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(set(resource_files()) - set(SECRET_TEMPLATES))
    assert listed[0] == "scalemesh-namespace.yaml"  # everything else lives in it
    for template in SECRET_TEMPLATES:
        assert load(template)["kind"] == "Secret"


def test_every_manifest_passes_strict_schema_validation() -> None:
    validator = Path(sys.executable).parent / "kubernetes-validate"
    files = [str(K8S / name) for name in resource_files()]
    result = subprocess.run(
        [str(validator), "--strict", "--quiet", *files], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    service = load("api-service.yaml")
    service["spec"]["replicas"] = 2  # Services have no replicas
    path = tmp_path / "api-service.yaml"
    path.write_text(yaml.safe_dump(service))
    validator = Path(sys.executable).parent / "kubernetes-validate"

    result = subprocess.run(
        [str(validator), "--strict", "--quiet", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "replicas" in result.stdout


def test_kustomize_renders_everything_into_the_namespace_with_the_release_image() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    (image,) = yaml.safe_load(KUSTOMIZATION.read_text())["images"]
    release_image = f"{image['newName']}:{image['newTag']}"

    kinds = sorted(doc["kind"] for doc in rendered)
    expected = sorted(
        resource["kind"] for name, resource in resources().items() if name not in SECRET_TEMPLATES
    )
    assert kinds == expected
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "scalemesh"
        if doc["kind"] in WORKLOAD_KINDS:
            source = one(doc["kind"], doc["metadata"]["labels"]["app.kubernetes.io/component"])
            if container(source)["image"].partition(":")[0] == APP_IMAGE:
                assert container(doc)["image"] == release_image
            else:
                assert container(doc)["image"] == container(source)["image"]


def test_configmap_and_secret_template_hold_exactly_the_settings_variables() -> None:
    config = set(configmap())
    secret_data = load("scalemesh-secret.yaml")["stringData"]
    secret = set(secret_data)

    assert config.isdisjoint(secret)
    assert config | secret == set(VARIABLES)
    assert secret == set(SECRET_VARIABLES), "secrets belong in the Secret, nothing else does"
    assert set(secret_data.values()) == {""}, "a template carries no real values"
    assert set(load("postgres-secret.yaml")["stringData"].values()) == {""}


def test_configmap_values_are_valid_settings() -> None:
    secrets = {
        "SCALEMESH_DATABASE_URL": "postgresql://scalemesh:pw@postgres:5432/scalemesh",
        "SCALEMESH_REDIS_URL": "redis://redis:6379/0",
        "SCALEMESH_SECRET_KEY": "k1:" + "ab" * 32,
        "SCALEMESH_PREVIEW_KEY": "p1:" + "cd" * 32,
    }

    settings = Settings.from_env({**configmap(), **secrets})
    settings.check_part("api")

    assert settings.runner is Runner.ECS
    assert settings.storage.scheme == "s3"
    assert settings.deployment_url("site") == f"https://site.{settings.root_domain}"
    assert settings.github is None  # GitHub stays off until its three values are set


def test_workloads_are_locked_down_and_sized() -> None:
    checked = []
    for name, workload in workloads():
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {volume["name"] for volume in spec.get("volumes", [])} | {
            claim["metadata"]["name"] for claim in workload["spec"].get("volumeClaimTemplates", [])
        }
        for box in spec["containers"]:
            security = box["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in security["capabilities"], name
            for bound in ("requests", "limits"):
                assert set(box["resources"][bound]) >= {"cpu", "memory"}, f"{name} {bound}"
            for mount in box.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{name}: {mount['name']}"
            tag = box["image"].rpartition(":")[2]
            assert tag not in ("", "latest"), name
        checked.append(workload["kind"])
    assert sorted(checked) == ["Deployment", "Deployment", "Deployment", "Job", "StatefulSet"]


def test_writable_paths_are_empty_dirs_under_a_read_only_root() -> None:
    data_dir = configmap()["SCALEMESH_DATA_DIR"]
    for component in ("api", "proxy"):
        workload = one("Deployment", component)
        mounts = {
            mount["mountPath"]: mount["name"] for mount in container(workload)["volumeMounts"]
        }
        volumes = {volume["name"]: volume for volume in pod_spec(workload)["volumes"]}
        for path in (data_dir, "/tmp"):  # noqa: S108 - the container's /tmp, an emptyDir
            assert "emptyDir" in volumes[mounts[path]], f"{component}: {path}"


def test_api_and_proxy_run_two_replicas_with_health_probes() -> None:
    api = one("Deployment", "api")
    proxy = one("Deployment", "proxy")

    assert api["spec"]["replicas"] == 2
    assert proxy["spec"]["replicas"] == 2
    api_box, proxy_box = container(api), container(proxy)
    # Liveness asks nothing of the database (a restart cannot mend its outage); readiness does.
    for box, prefix in ((api_box, ""), (proxy_box, "/_scalemesh")):
        assert box["readinessProbe"]["httpGet"]["path"] == f"{prefix}/readyz"
        assert box["livenessProbe"]["httpGet"]["path"] == f"{prefix}/livez"
    assert api_box["startupProbe"]["httpGet"]["path"] == "/livez"
    for box, port in ((api_box, 8000), (proxy_box, 8080)):
        ports = {p["name"]: p["containerPort"] for p in box["ports"]}
        assert ports["http"] == port
        for probe in ("readinessProbe", "livenessProbe"):
            assert box[probe]["httpGet"]["port"] == "http"


def test_commands_are_real_cli_commands() -> None:
    parser = build_parser()
    expected = {"api": ("serve", "api"), "proxy": ("serve", "proxy"), "migrate": ("migrate",)}
    for component, words in expected.items():
        kind = "Job" if component == "migrate" else "Deployment"
        box = container(one(kind, component))
        args = parser.parse_args(box["args"])
        assert tuple(box["args"][: len(words)]) == words
        assert box["image"].partition(":")[0] == APP_IMAGE
        assert args.command == words[0]
        env_from = {next(iter(ref.values()))["name"] for ref in box["envFrom"]}
        secrets = "scalemesh-proxy-secrets" if component == "proxy" else "scalemesh-secrets"
        assert {"scalemesh-config", secrets} <= env_from


def test_proxy_scales_and_disruptions_keep_one_pod_serving() -> None:
    hpa = one("HorizontalPodAutoscaler", "proxy")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": one("Deployment", "proxy")["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    for component in ("api", "proxy"):
        budget = one("PodDisruptionBudget", component)
        labels = one("Deployment", component)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budget["spec"]["minAvailable"] == 1


def test_services_select_their_pods_and_named_ports() -> None:
    pods = [
        (pod_spec(w), w["spec"]["template"]["metadata"]["labels"])
        for _, w in workloads()
        if w["kind"] != "Job"
    ]
    services = [r for r in resources().values() if r["kind"] == "Service"]
    assert len(services) == 4
    for service in services:
        selector = service["spec"]["selector"].items()
        (spec,) = [spec for spec, labels in pods if selector <= labels.items()]
        names = {p["name"] for box in spec["containers"] for p in box["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, service["metadata"]["name"]


def test_database_keeps_its_data_and_both_stores_say_they_are_replaceable() -> None:
    postgres = one("StatefulSet", "postgres")
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(postgres)["volumeMounts"]}

    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    pgdata = next(e["value"] for e in container(postgres)["env"] if e["name"] == "PGDATA")
    assert pgdata.startswith(mounts[claim["metadata"]["name"]] + "/")
    for name in ("postgres-statefulset.yaml", "redis-deployment.yaml"):
        assert "managed service" in (K8S / name).read_text(), name


def test_ingress_routes_the_api_host_and_the_deployment_wildcard() -> None:
    ingress = load("scalemesh-ingress.yaml")
    config = configmap()
    api_host = urlsplit(config["SCALEMESH_PUBLIC_URL"]).hostname
    wildcard = f"*.{config['SCALEMESH_ROOT_DOMAIN']}"
    services = {
        component: one("Service", component)["metadata"]["name"] for component in ("api", "proxy")
    }

    routes = {
        rule["host"]: rule["http"]["paths"][0]["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
    }
    assert routes == {api_host: services["api"], wildcard: services["proxy"]}
    tls_hosts = {host for entry in ingress["spec"]["tls"] for host in entry["hosts"]}
    assert tls_hosts == {api_host, wildcard}
    # GitHub's webhook payloads reach 25 MB; nginx refuses more than 1 MB by default.
    assert (
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "25m"
    )
