#!/usr/bin/env bash
# Sets everything up and runs the main job locally, with no cloud account.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/setup.sh
python -m workloads demo "$@"
