"""The VCF pipeline: synthesise, validate, normalise (bcftools), annotate, write Parquet, load."""
