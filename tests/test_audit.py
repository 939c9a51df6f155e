"""`make audit` (.ci/audit.py): found vulnerabilities fail; an audit that checked nothing says so.

pip-audit is replaced by a stand-in that writes a given JSON report per vulnerability service
(or none, as when that service cannot be reached): what is tested is what the script makes of
each answer. pip-audit itself exits 0 with "No known vulnerabilities found" when every package
was skipped, which is the answer this script must not take at its word.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent
AUDIT = ROOT / ".ci" / "audit.py"

STAND_IN = """
import json, sys
from pathlib import Path
here = Path(sys.argv[0])
argv = sys.argv[1:]
service = argv[argv.index("--vulnerability-service") + 1]
with open(f"{here}.calls", "a") as calls:
    calls.write(" ".join(argv) + "\\n")
report = json.loads(Path(f"{here}.json").read_text()).get(service)
if report is None:
    sys.exit("requests.exceptions.ConnectionError: the service could not be reached")
Path(argv[argv.index("--output") + 1]).write_text(json.dumps(report))
"""


def audit(tmp_path: Path, **reports: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run the audit against a stand-in answering `reports[service]` (absent: unreachable)."""
    stand_in = tmp_path / "pip-audit"
    stand_in.write_text(f"#!{sys.executable}\n{STAND_IN}")
    stand_in.chmod(0o755)
    (tmp_path / "pip-audit.json").write_text(json.dumps(reports))
    lock = tmp_path / "requirements.lock"
    lock.write_text("")
    return subprocess.run(
        [sys.executable, str(AUDIT), str(lock), "--pip-audit", str(stand_in)],
        capture_output=True,
        text=True,
        check=False,
    )


def services_asked(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "pip-audit.calls").read_text().splitlines()
    return [line.split("--vulnerability-service ")[1].split()[0] for line in lines]


def package(name: str, *vulns: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "vulns": list(vulns)}


def skipped(name: str) -> dict[str, Any]:
    return {"name": name, "skip_reason": f"Dependency not found on PyPI: {name} (1.0)"}


def test_known_vulnerabilities_fail_the_audit(tmp_path: Path) -> None:
    vuln = {"id": "PYSEC-2026-1", "fix_versions": ["1.1"], "aliases": [], "description": "x"}
    report = {"dependencies": [package("jinja2"), package("redis", vuln)], "fixes": []}

    done = audit(tmp_path, pypi=report)

    assert done.returncode == 1
    assert "KNOWN VULNERABILITIES" in done.stdout
    assert "redis 1.0: PYSEC-2026-1 (fixed in: 1.1)" in done.stdout
    assert "jinja2" not in done.stdout


def test_a_vulnerability_without_a_fix_still_fails(tmp_path: Path) -> None:
    report = {"dependencies": [package("redis", {"id": "GHSA-x", "fix_versions": []})]}

    done = audit(tmp_path, pypi=report)

    assert done.returncode == 1
    assert "GHSA-x (fixed in: no fixed version yet)" in done.stdout


def test_a_clean_audit_passes_and_names_what_it_could_not_check(tmp_path: Path) -> None:
    report = {"dependencies": [package("jinja2"), package("redis"), skipped("scalemesh-x")]}

    done = audit(tmp_path, pypi=report)

    assert done.returncode == 0
    assert "2 locked package(s) audited against pypi: no known vulnerabilities" in done.stdout
    assert "NOT AUDITED (1, the service does not know them): scalemesh-x" in done.stdout
    assert services_asked(tmp_path) == ["pypi"]


def test_every_package_skipped_is_nothing_audited_not_a_pass(tmp_path: Path) -> None:
    """PyPI's JSON API answering 404 for every package: pip-audit itself reports success."""
    report = {"dependencies": [skipped("jinja2"), skipped("redis")]}

    done = audit(tmp_path, pypi=report)

    assert done.returncode == 0  # not fatal: CI without a vulnerability database still runs
    assert "could look up none of 2 package(s)" in done.stdout
    assert "NOTHING WAS AUDITED" in done.stdout
    assert "no known vulnerabilities" not in done.stdout
    assert services_asked(tmp_path) == ["pypi", "osv"]


def test_osv_is_asked_when_pypi_cannot_answer(tmp_path: Path) -> None:
    vuln = {"id": "GHSA-abcd", "fix_versions": ["2.0"]}

    done = audit(tmp_path, osv={"dependencies": [package("redis", vuln)]})

    assert done.returncode == 1
    assert "pip-audit (pypi) failed: requests.exceptions.ConnectionError" in done.stdout
    assert "redis 1.0: GHSA-abcd (fixed in: 2.0)" in done.stdout
    assert services_asked(tmp_path) == ["pypi", "osv"]


def test_no_database_reachable_is_nothing_audited(tmp_path: Path) -> None:
    done = audit(tmp_path)

    assert done.returncode == 0
    assert done.stdout.count("failed: requests.exceptions.ConnectionError") == 2
    assert "NOTHING WAS AUDITED" in done.stdout
