"""The engine's defaults, in one light module the CLI can import without the engine."""

from __future__ import annotations

DEFAULT_NODES = ("us", "eu", "sg")  # the demo and default node set (three: see secure_agg)
DEFAULT_K = 10  # small-cell threshold the hub asks for (nodes apply their own floor too)
DEFAULT_ROUND_TIMEOUT = 30.0  # seconds a step waits before silent nodes count as dropped
DEFAULT_MAX_ROUNDS = 10  # Newton rounds of an exact fit before it is declared non-converged
DEFAULT_DP_DELTA = 1e-6
# DP: releases a run's budget covers
PLANNED_RELEASES = {"stats": 1, "fit": 6, "both": 7, "robotics": 1}
LOCAL_PROJECT = "sovereign-local"  # the Pub/Sub emulator's project id
TRANSPORTS = ("inprocess", "pubsub")

# Federated synthetic data (workloads/synthetic): the budget split and score clip of a run
# (a node's cap is its policy's lifetime_epsilon, as for every DP release).
SYNTH_DELTA = 1e-6
SYNTH_MARGINAL_SHARE = 0.5  # DPCopula-style: half to the marginals, half to the dependence
SYNTH_CLIP = 3.0  # normal scores are clipped at +-3 (bounds each row's product terms)
