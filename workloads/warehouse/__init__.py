"""Warehouse: where a node's tables live. BigQuery in the cloud, encrypted DuckDB locally."""

from workloads.warehouse.base import LoadResult, Warehouse

__all__ = ["LoadResult", "Warehouse"]
