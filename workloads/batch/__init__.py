"""Batch tasks of every registered kind: the task registry, the container entrypoint, the
typed Cloud Batch job (CLI dry-run and submit) and the local runner."""
