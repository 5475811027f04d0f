"""The Snakefile's helpers: the DVC graph as Snakemake rules, and the JSON schema of params.yaml."""
