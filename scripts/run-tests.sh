#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: lint, type check, tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/setup.sh --need-emulator --need-checkov

echo "== ruff"; ruff check .
echo "== mypy (strict: infra/ and workloads/)"; mypy
echo "== pytest"; pytest -n 2 "$@"
