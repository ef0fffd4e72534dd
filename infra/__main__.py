"""Entry point for `pulumi up -s <stack>` (Pulumi.yaml: `main: infra/`).

Pulumi runs this file from infra/ in the project's virtualenv (.venv), where
scripts/setup.sh has installed this project (`pip install -e .`): `infra` and `workloads`
import as installed packages, nothing edits sys.path.
"""

try:
    from infra.program import main
except ModuleNotFoundError as exc:
    if exc.name not in ("infra", "workloads"):
        raise
    raise SystemExit(
        f"error: the package {exc.name!r} is not installed in the virtualenv Pulumi runs "
        "(.venv); fix: run scripts/setup.sh, or `.venv/bin/pip install -e .` in the project"
    ) from None

main()
