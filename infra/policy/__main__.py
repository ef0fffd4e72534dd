"""The CrossGuard policy pack: `pulumi preview --policy-pack infra/policy`.

Pulumi runs this file with this directory as the program (runpy), inside the pack's own
virtualenv (PulumiPolicy.yaml; requirements.txt: pulumi + pulumi-policy only). The policies
are the pure functions in sovereign_policies/, the same ones the tests run.
"""

import importlib
import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent
if str(PACK_DIR) not in sys.path:
    sys.path.insert(0, str(PACK_DIR))

from pulumi_policy import PolicyPack  # noqa: E402

pack = importlib.import_module("sovereign_policies.pack")

PolicyPack(
    name=pack.PACK_NAME,
    policies=pack.pulumi_policies(),
    enforcement_level=pack.ENFORCEMENT,
)
