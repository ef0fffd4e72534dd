"""The VCF pipeline: synthesise, validate, normalise (bcftools), annotate, write Parquet, load."""

# Defaults of `vcf synth` (library and CLI); kept here so the CLI need not import htslib.
SYNTH_RECORDS = 2_000
SYNTH_SHARDS = 4  # files `vcf synth` writes unless told
