"""deploy/k8s/cert-manager: the certificates the Ingress serves, checked offline.

One DNS-01 wildcard for every deployment name (so no preview hostname is ever in a certificate
of its own), HTTP-01 certificates for the API host and each custom domain. The Ingress is
validated strictly against the bundled Kubernetes schemas; cert-manager's kinds, which those
schemas lack, against the fields of cert-manager.io/v1 these files use (a misspelt field would
be ignored by nobody: the API server refuses it); all rendered by `kubectl kustomize`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.support.k8s import K8S, configmap, load

TLS = K8S / "cert-manager"
KUSTOMIZATION = TLS / "kustomization.yaml"
ISSUER = "letsencrypt-issuer.yaml"
CUSTOM_DOMAINS = "custom-domains-ingress.yaml"
CERT_MANAGER = "cert-manager.io/v1"
# The fields of cert-manager.io/v1 used here, each object's allowed keys (by its path).
FIELDS: dict[str, set[str]] = {
    "": {"apiVersion", "kind", "metadata", "spec"},
    "metadata": {"name", "namespace", "labels"},
    "Issuer.spec": {"acme"},
    "Issuer.spec.acme": {"server", "email", "privateKeySecretRef", "solvers"},
    "Issuer.spec.acme.privateKeySecretRef": {"name"},
    "Issuer.spec.acme.solvers[]": {"selector", "dns01", "http01"},
    "Issuer.spec.acme.solvers[].selector": {"dnsZones", "dnsNames", "matchLabels"},
    "Issuer.spec.acme.solvers[].http01": {"ingress"},
    "Issuer.spec.acme.solvers[].http01.ingress": {"ingressClassName"},
    "Certificate.spec": {"secretName", "dnsNames", "issuerRef"},
    "Certificate.spec.issuerRef": {"kind", "name", "group"},
}
DNS01_PROVIDERS = {
    "acmeDNS", "akamai", "azureDNS", "cloudDNS", "cloudflare", "digitalocean", "rfc2136",
    "route53", "webhook",
}  # fmt: skip


def tls_resources() -> dict[str, dict[str, Any]]:
    return {
        path.name: load_here(path.name)
        for path in sorted(TLS.glob("*.yaml"))
        if path != KUSTOMIZATION
    }


def load_here(name: str) -> dict[str, Any]:
    (document,) = yaml.safe_load_all((TLS / name).read_text())
    loaded: dict[str, Any] = document
    return loaded


def unknown_fields(value: Any, path: str, kind: str) -> list[str]:
    """Keys of `value` that cert-manager.io/v1 does not have where they stand (see FIELDS)."""
    found = []
    if isinstance(value, list):
        for item in value:
            found += unknown_fields(item, path + "[]", kind)
    elif isinstance(value, dict):
        rule = FIELDS.get(path) if path in ("", "metadata") else FIELDS.get(f"{kind}.{path}")
        for key, item in value.items():
            if rule is not None and key not in rule:
                found.append(f"{path}.{key}")
            if key != "labels" and not path.endswith("dns01"):
                found += unknown_fields(item, f"{path}.{key}".lstrip("."), kind)
    return found


def test_one_resource_per_file_all_listed_in_the_namespace() -> None:
    listed = yaml.safe_load(KUSTOMIZATION.read_text())["resources"]

    assert sorted(listed) == sorted(tls_resources())
    for name, resource in tls_resources().items():
        assert name.endswith(f"-{resource['kind'].lower()}.yaml"), name
        assert resource["metadata"]["namespace"] == "scalemesh", name


def test_cert_manager_resources_use_only_cert_manager_v1_fields() -> None:
    kinds = []
    for name, resource in tls_resources().items():
        if resource["kind"] == "Ingress":
            continue
        assert resource["apiVersion"] == CERT_MANAGER, name
        assert unknown_fields(resource, "", resource["kind"]) == [], name
        kinds.append(resource["kind"])
    assert sorted(kinds) == ["Certificate", "Certificate", "Issuer"]


def test_a_misspelt_field_is_caught() -> None:
    certificate = load_here("api-certificate.yaml")
    certificate["spec"]["dnsName"] = certificate["spec"].pop("dnsNames")

    assert unknown_fields(certificate, "", "Certificate") == ["spec.dnsName"]


def test_the_ingress_passes_strict_schema_validation() -> None:
    validator = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [str(validator), "--strict", "--quiet", str(TLS / CUSTOM_DOMAINS)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN" not in result.stdout  # validated, not skipped for want of a schema


def test_every_deployment_name_is_under_one_dns01_wildcard_certificate() -> None:
    root = configmap()["SCALEMESH_ROOT_DOMAIN"]
    certificate = load_here("deployments-certificate.yaml")
    acme = load_here(ISSUER)["spec"]["acme"]
    ingress = load("scalemesh-ingress.yaml")

    assert certificate["spec"]["dnsNames"] == [f"*.{root}", root]
    # The main Ingress serves the wildcard host from the secret this certificate fills.
    served = {entry["secretName"]: entry["hosts"] for entry in ingress["spec"]["tls"]}
    assert served[certificate["spec"]["secretName"]] == [f"*.{root}"]
    (dns01,) = [solver for solver in acme["solvers"] if "dns01" in solver]
    assert dns01["selector"] == {"dnsZones": [root]}
    (provider,) = dns01["dns01"]
    assert provider in DNS01_PROVIDERS
    assert "OPERATOR: your DNS provider" in (TLS / ISSUER).read_text()


def test_the_api_host_and_custom_domains_take_http01_certificates_of_their_own() -> None:
    config = configmap()
    api_host = urlsplit(config["SCALEMESH_PUBLIC_URL"]).hostname
    issuer = load_here(ISSUER)
    (http01,) = [solver for solver in issuer["spec"]["acme"]["solvers"] if "http01" in solver]
    main = load("scalemesh-ingress.yaml")
    custom = load_here(CUSTOM_DOMAINS)
    api = load_here("api-certificate.yaml")

    # No selector: every name outside the root domain's zone is proven over HTTP.
    assert "selector" not in http01
    assert http01["http01"]["ingress"]["ingressClassName"] == main["spec"]["ingressClassName"]
    for certificate in (api, load_here("deployments-certificate.yaml")):
        assert certificate["spec"]["issuerRef"] == {
            "kind": "Issuer",
            "name": issuer["metadata"]["name"],
            "group": "cert-manager.io",
        }
    served = {entry["secretName"]: entry["hosts"] for entry in main["spec"]["tls"]}
    assert api["spec"]["dnsNames"] == served[api["spec"]["secretName"]] == [api_host]
    # cert-manager keeps one Certificate per `tls` entry of the annotated Ingress: one per
    # domain, each in its own secret, each routed to the proxy.
    assert custom["metadata"]["annotations"]["cert-manager.io/issuer"] == issuer["metadata"]["name"]
    assert custom["spec"]["ingressClassName"] == main["spec"]["ingressClassName"]
    entries = custom["spec"]["tls"]
    assert all(len(entry["hosts"]) == 1 for entry in entries)
    secrets = [entry["secretName"] for entry in entries]
    assert len(set(secrets)) == len(secrets)
    assert set(secrets).isdisjoint(served)
    hosts = [entry["hosts"][0] for entry in entries]
    routes = {
        rule["host"]: rule["http"]["paths"][0]["backend"]["service"]["name"]
        for rule in custom["spec"]["rules"]
    }
    assert routes == dict.fromkeys(hosts, "scalemesh-proxy")
    for host in hosts:
        assert host != api_host
        assert not host.endswith(config["SCALEMESH_ROOT_DOMAIN"]), "the wildcard's, not its own"


def test_kustomize_renders_the_certificates_into_the_namespace() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl renders the manifests as `kubectl apply -k` would"
    result = subprocess.run(
        [kubectl, "kustomize", str(TLS)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    rendered = [document for document in yaml.safe_load_all(result.stdout) if document]
    assert sorted(document["kind"] for document in rendered) == [
        "Certificate",
        "Certificate",
        "Ingress",
        "Issuer",
    ]
    assert {document["metadata"]["namespace"] for document in rendered} == {"scalemesh"}
