"""Clinical FHIR records: synthesise, split, validate, stage, merge, flatten (SQL on FHIR)."""
