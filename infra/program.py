"""The Pulumi program: read and validate the stack's config, then declare its role."""

from __future__ import annotations

from infra import config
from infra.hub import declare_hub
from infra.node import declare_node


def main() -> None:
    cfg = config.load()  # raises ConfigError before any resource exists
    if isinstance(cfg, config.NodeConfig):
        declare_node(cfg)
    else:
        declare_hub(cfg)
