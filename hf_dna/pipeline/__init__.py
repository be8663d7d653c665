"""The pipeline: probes -> a backend's responses (cached) -> sentence embeddings -> the DNA projection -> a
`DNARecord`. `extract.extract` is the entry point. It never imports the reference, the audit, the report or the
CLI."""
