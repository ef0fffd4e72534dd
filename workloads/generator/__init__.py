"""Synthetic patient genomic data per node, from profiles kept as data (profiles/*.toml)."""

from workloads.generator.profile import Profile, find_profile, load_profile
from workloads.generator.run import GenerateResult, generate_node
from workloads.generator.sampling import generate_batches
from workloads.generator.summary import NodeSummary, format_summaries, summarize_nodes

__all__ = [
    "GenerateResult",
    "NodeSummary",
    "Profile",
    "find_profile",
    "format_summaries",
    "generate_batches",
    "generate_node",
    "load_profile",
    "summarize_nodes",
]
