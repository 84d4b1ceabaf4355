#!/usr/bin/env bash
# Scans the installed Python environment for dependencies with known vulnerabilities
# (pip-audit against PyPI's advisory data). Run by `make audit`.
#
# Not part of `make test`: pip-audit asks https://pypi.org/pypi/<name>/<version>/json for
# every package, and the package mirror the development machines and CI use here answers
# that endpoint with 404 — pip-audit then reports every package as "not found on PyPI".
# Where pypi.org answers, this exits non-zero on any known vulnerability.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
.venv/bin/pip-audit --skip-editable --progress-spinner off --format json --output "$out" || true
.venv/bin/python - "$out" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
deps = report["dependencies"]
unaudited = [d for d in deps if "not found on PyPI" in d.get("skip_reason", "")]
if len(unaudited) >= len(deps) / 2:
    sys.exit(f"pip-audit could not reach PyPI's vulnerability data ({len(unaudited)} of "
             f"{len(deps)} packages 'not found on PyPI'); run where pypi.org answers")
vulnerable = [d for d in deps if d.get("vulns")]
for d in vulnerable:
    fixes = "; ".join(f"{v['id']} fixed in {', '.join(v['fix_versions']) or '?'}" for v in d["vulns"])
    print(f"{d['name']} {d['version']}: {fixes}")
sys.exit(1 if vulnerable else 0)
PY
echo "no known vulnerabilities in $(.venv/bin/pip list --format freeze | wc -l) installed packages"
