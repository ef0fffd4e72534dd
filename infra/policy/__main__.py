"""The CrossGuard policy pack: `pulumi preview --policy-pack infra/policy`.

Pulumi runs this directory as the program (`runpy.run_path(<pack dir>)`, which puts the
directory first on sys.path, so `sovereign_policies` imports as a top-level package), inside
the pack's own virtualenv (PulumiPolicy.yaml; requirements.txt: pulumi + pulumi-policy
only). The policies are the pure functions in sovereign_policies/, the same ones the tests
run; this project is not installed in that virtualenv and nothing here needs it.
"""

import importlib

from pulumi_policy import PolicyPack

pack = importlib.import_module("sovereign_policies.pack")

PolicyPack(
    name=pack.PACK_NAME,
    policies=pack.pulumi_policies(),
    enforcement_level=pack.ENFORCEMENT,
)
