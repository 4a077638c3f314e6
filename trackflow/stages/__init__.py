"""The stages, one module per stage (or per part of the discovery stage): each reads its inputs from files,
calls the pure work in components/, writes its outputs atomically and returns a small JSON-serialisable
summary. trackflow/pipeline.py lists them; the Prefect flows and the `trackflow <stage>` commands that DVC
runs call the same functions."""
