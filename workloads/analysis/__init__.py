"""Federated analyses a researcher specifies (a table, outcome, covariates, cohort, family),
computed inside each node's warehouse as one SQL aggregate per round; see docs/analysis.md."""
