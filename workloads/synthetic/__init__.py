"""Federated synthetic data: a differentially private federated Gaussian copula."""
