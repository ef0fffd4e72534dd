"""The CrossGuard policy pack (run by Pulumi from this directory) and its main-env helpers.

`sovereign_policies/` holds the policies as pure Python over (type, name, urn, props,
protect); `__main__.py` wires them into pulumi_policy for `pulumi preview --policy-pack`;
`evaluate.py` and `config.py` run the same functions from the project's own environment.
"""
