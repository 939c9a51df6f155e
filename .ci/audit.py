"""`make audit`: the locked versions against known vulnerabilities, with pip-audit.

pip-audit says "No known vulnerabilities found" and exits 0 even when it could look up nothing
(a package index without the JSON API answers 404 for every package, and each is skipped), so
this reads its JSON report and says which of three things happened:

- vulnerabilities found: each is listed, exit 1;
- every package looked up, none vulnerable: exit 0;
- no vulnerability database answered: "NOTHING WAS AUDITED", exit 0, so a CI without the
  network still runs the rest (the line is there for whoever reads the log).

Usage: python .ci/audit.py requirements.lock [--pip-audit PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SERVICES = ("pypi", "osv")
"""Vulnerability services to try, in order, until one of them can look packages up."""


def run_pip_audit(pip_audit: str, lock: str, service: str) -> dict[str, object] | None:
    """pip-audit's JSON report, or None when it produced none (it could not run at all)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        # The lock has every package with its hashes: nothing is installed to audit it.
        argv = [
            pip_audit,
            "--requirement",
            lock,
            "--require-hashes",
            "--disable-pip",
            "--vulnerability-service",
            service,
            "--format",
            "json",
            "--output",
            str(report),
            "--progress-spinner",
            "off",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if not report.exists():
            reason = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
            print(f"pip-audit ({service}) failed: {reason[0]}")
            return None
        loaded: dict[str, object] = json.loads(report.read_text() or "{}")
        return loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock")
    parser.add_argument("--pip-audit", default=str(Path(sys.executable).parent / "pip-audit"))
    args = parser.parse_args()

    for service in SERVICES:
        report = run_pip_audit(args.pip_audit, args.lock, service)
        if report is None:
            continue
        dependencies = [d for d in report.get("dependencies", []) if isinstance(d, dict)]
        audited = [d for d in dependencies if "skip_reason" not in d]
        skipped = [d for d in dependencies if "skip_reason" in d]
        vulnerable = [d for d in audited if d.get("vulns")]
        if vulnerable:
            print(f"KNOWN VULNERABILITIES in {len(vulnerable)} locked package(s) ({service}):")
            for dependency in vulnerable:
                for vuln in dependency["vulns"]:
                    fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
                    print(
                        f"  {dependency['name']} {dependency.get('version', '?')}: "
                        f"{vuln.get('id', '?')} (fixed in: {fixes})"
                    )
            print("Upgrade the pin in pyproject.toml, then `make lock`.")
            return 1
        if audited:
            print(
                f"{len(audited)} locked package(s) audited against {service}: "
                "no known vulnerabilities"
            )
            if skipped:
                names = ", ".join(sorted(str(d.get("name")) for d in skipped))
                print(f"NOT AUDITED ({len(skipped)}, the service does not know them): {names}")
            return 0
        print(f"pip-audit ({service}) could look up none of {len(dependencies)} package(s)")
    print("NOTHING WAS AUDITED: no vulnerability database answered (is PyPI's JSON API or")
    print("api.osv.dev reachable from here?). This run says nothing about vulnerabilities.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
