"""Federated synthetic data: a differentially private federated Gaussian copula.

The seed's API (genesis.federated) with real meanings: see api.py, simulator.py, and
docs/synthetic.md. Over local nodes: run.federated_synthesis.
"""

from workloads.synthetic.api import (
    DataSite,
    FederatedGenerator,
    ModelAggregator,
    SecureAggregator,
    SiteConfig,
    TrainResult,
    create_federated_generator,
)
from workloads.synthetic.quality import QualityEvaluator
from workloads.synthetic.simulator import FederatedTrainingSimulator

__all__ = [
    "DataSite",
    "FederatedGenerator",
    "FederatedTrainingSimulator",
    "ModelAggregator",
    "QualityEvaluator",
    "SecureAggregator",
    "SiteConfig",
    "TrainResult",
    "create_federated_generator",
]
