"""Federation engine: only aggregates leave a node."""
