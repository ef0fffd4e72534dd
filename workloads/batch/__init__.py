"""Running the VCF pipeline as a Confidential Cloud Batch job (or locally, the same task)."""
