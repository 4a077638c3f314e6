"""The work of the pipeline: typed functions and small classes, no Prefect, no hidden I/O."""
