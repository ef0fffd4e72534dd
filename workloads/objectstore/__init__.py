"""ObjectStore: a node's buckets, as a local folder or Google Cloud Storage."""

from workloads.objectstore.base import ObjectStore, open_store

__all__ = ["ObjectStore", "open_store"]
