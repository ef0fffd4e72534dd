"""Entry point for `pulumi up -s <stack>` (Pulumi.yaml: `main: infra/`)."""

import sys
from pathlib import Path

# Pulumi runs this file with infra/ as the program directory: make the repository root
# importable so `infra` and `workloads` (schemas, resource names) resolve as packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.program import main

main()
