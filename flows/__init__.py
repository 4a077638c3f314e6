"""Prefect flows: wiring only; every task calls a stage function from trackflow.stages."""
