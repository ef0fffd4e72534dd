"""What a node's name may be, defined once for the stacks, the local nodes and the protocol.

A node name becomes part of GCP resource ids: the federation worker's subscription
(`federation-broadcast-<node>`), service account ids (6-30 characters) and labels. Twelve
lowercase letters or digits, starting with a letter, fit all of them.
"""

from __future__ import annotations

import re

NODE_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
NODE_NAME_RULE = "1-12 lowercase letters or digits, starting with a letter"


def is_node_name(name: str) -> bool:
    return bool(NODE_NAME.match(name))
