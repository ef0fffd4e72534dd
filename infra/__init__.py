"""The Pulumi program: a sovereign node role and a federation hub role (see program.py)."""
